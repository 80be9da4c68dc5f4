package runtimes

import (
	"bytes"
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// fakeHost makes interpreters that are shell scripts printing a version,
// under root/local/bin and root/bin, and a prober that looks there.
func fakeHost(t *testing.T) (root string, p prober) {
	t.Helper()
	root = t.TempDir()
	for _, d := range []string{"local/bin", "bin", "elsewhere"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	p = prober{
		dirs:  []string{filepath.Join(root, "local/bin"), filepath.Join(root, "bin")},
		roots: []string{filepath.Join(root, "local"), filepath.Join(root, "bin")},
		run:   runCommand,
	}
	return root, p
}

func script(t *testing.T, name, output string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(name, []byte("#!/bin/sh\necho '"+output+"'\n"), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(name, mode); err != nil { // umask
		t.Fatal(err)
	}
}

func TestProbe(t *testing.T) {
	root, p := fakeHost(t)
	local, bin := filepath.Join(root, "local/bin"), filepath.Join(root, "bin")
	script(t, filepath.Join(bin, "python3.12"), "3.12", 0o755)
	script(t, filepath.Join(local, "python3.12"), "3.12", 0o755) // preferred: first dir
	script(t, filepath.Join(bin, "python3.13"), "3.11", 0o755)   // lies about its version
	script(t, filepath.Join(bin, "python3.9"), "3.9", 0o750)     // others may not run it
	script(t, filepath.Join(root, "elsewhere", "py"), "3.10", 0o755)
	if err := os.Symlink(filepath.Join(root, "elsewhere", "py"), filepath.Join(bin, "python3.10")); err != nil {
		t.Fatal(err) // resolves outside what a sandbox sees
	}
	script(t, filepath.Join(bin, "node"), "v22.3.0", 0o755)
	if err := os.Symlink("node", filepath.Join(bin, "nodejs")); err != nil {
		t.Fatal(err) // the same binary: probed once
	}
	script(t, filepath.Join(local, "node"), "v20.11.1", 0o755)

	h := p.probe(context.Background())
	var names []string
	for n := range h.available {
		names = append(names, n)
	}
	slices.Sort(names)
	want := []string{"nodejs20.x", "nodejs22.x", "provided.al2", "provided.al2023", "python3.12"}
	if !slices.Equal(names, want) {
		t.Fatalf("available = %v, want %v", names, want)
	}
	if got := h.available["python3.12"]; got.Interpreter != filepath.Join(local, "python3.12") || got.Family != FamilyPython || got.Version != "3.12" || got.NeedsBootstrap {
		t.Errorf("python3.12 = %+v", got)
	}
	if got := h.available["nodejs22.x"]; got.Interpreter != filepath.Join(bin, "node") || got.Version != "22" {
		t.Errorf("nodejs22.x = %+v", got)
	}
	if got := h.available["nodejs20.x"]; got.Interpreter != filepath.Join(local, "node") {
		t.Errorf("nodejs20.x = %+v", got)
	}
	if got := h.available["provided.al2023"]; !got.NeedsBootstrap || got.Family != FamilyProvided || got.Interpreter != "" {
		t.Errorf("provided.al2023 = %+v", got)
	}
	if len(h.nodes) != 2 {
		t.Errorf("nodes = %+v, want 2 (nodejs is a link to node)", h.nodes)
	}

	if msg := h.unavailable("python3.12", p.dirs); msg != "" {
		t.Errorf("unavailable(python3.12) = %q", msg)
	}
	msg := h.unavailable("python3.13", p.dirs)
	for _, s := range []string{"python3.13", "Python 3.13", filepath.Join(bin, "python3.13"), filepath.Join(local, "python3.13")} {
		if !strings.Contains(msg, s) {
			t.Errorf("unavailable(python3.13) = %q: no %q", msg, s)
		}
	}
	msg = h.unavailable("nodejs18.x", p.dirs)
	for _, s := range []string{"nodejs18.x", "Node.js 18", "v22.3.0", "v20.11.1", filepath.Join(bin, "node")} {
		if !strings.Contains(msg, s) {
			t.Errorf("unavailable(nodejs18.x) = %q: no %q", msg, s)
		}
	}
	msg = h.unavailable("java21", p.dirs)
	if !strings.Contains(msg, "not a runtime Ember knows") || !strings.Contains(msg, "python3.13") {
		t.Errorf("unavailable(java21) = %q", msg)
	}
}

func TestProbeNoNode(t *testing.T) {
	_, p := fakeHost(t)
	h := p.probe(context.Background())
	if len(h.available) != 2 {
		t.Errorf("available = %v, want the provided runtimes only", h.available)
	}
	if msg := h.unavailable("nodejs20.x", p.dirs); !strings.Contains(msg, "which this Ember host does not have.") ||
		strings.Contains(msg, "it has") {
		t.Errorf("unavailable(nodejs20.x) = %q", msg)
	}
}

// Versioned Node.js names let one host serve several majors: node22,
// node-18 and nodejs24 next to node; a versioned name that reports another
// major does not serve either.
func TestProbeVersionedNode(t *testing.T) {
	root, p := fakeHost(t)
	local, bin := filepath.Join(root, "local/bin"), filepath.Join(root, "bin")
	script(t, filepath.Join(bin, "node"), "v20.11.1", 0o755)
	script(t, filepath.Join(bin, "node22"), "v22.3.0", 0o755)
	script(t, filepath.Join(local, "node-18"), "v18.20.4", 0o755)
	script(t, filepath.Join(bin, "nodejs24"), "v24.1.0", 0o755)
	script(t, filepath.Join(bin, "node-20"), "v20.11.1", 0o755)   // a second Node.js 20: the first found serves
	script(t, filepath.Join(local, "nodejs22"), "v21.0.0", 0o755) // lies about its name
	script(t, filepath.Join(bin, "node16"), "v16.0.0", 0o755)     // not a major Ember knows: not looked for
	h := p.probe(context.Background())
	want := map[string]string{
		"nodejs18.x": filepath.Join(local, "node-18"),
		"nodejs20.x": filepath.Join(bin, "node"),
		"nodejs22.x": filepath.Join(bin, "node22"),
		"nodejs24.x": filepath.Join(bin, "nodejs24"),
	}
	for name, path := range want {
		if got := h.available[name]; got.Interpreter != path || got.Family != FamilyNode || "nodejs"+got.Version+".x" != name {
			t.Errorf("%s = %+v, want interpreter %s", name, got, path)
		}
	}
	var nodes []string
	for n := range h.available {
		if strings.HasPrefix(n, "nodejs") {
			nodes = append(nodes, n)
		}
	}
	if len(nodes) != len(want) {
		t.Errorf("Node.js runtimes %v, want %d", nodes, len(want))
	}
	for _, n := range h.nodes {
		if strings.HasSuffix(n.path, "node16") {
			t.Errorf("probed %s", n.path)
		}
	}
}

func TestUnavailableMessages(t *testing.T) {
	root, p := fakeHost(t)
	bin := filepath.Join(root, "bin")
	script(t, filepath.Join(bin, "node"), "v20.11.1", 0o755)
	h := p.probe(context.Background())
	msg := h.unavailable("nodejs22.x", p.dirs)
	want := "Runtime nodejs22.x needs Node.js 22 as node, nodejs, node22, node-22 or nodejs22 in " +
		p.dirs[0] + " or " + p.dirs[1] + " (executable by all users, reporting version 22), which this Ember host does not have; " +
		"it has Node.js v20.11.1 (" + filepath.Join(bin, "node") + ")."
	if msg != want {
		t.Errorf("unavailable(nodejs22.x) =\n%s\nwant\n%s", msg, want)
	}
	msg = h.unavailable("python3.13", p.dirs)
	want = "Runtime python3.13 needs Python 3.13 as " + filepath.Join(p.dirs[0], "python3.13") + " or " +
		filepath.Join(p.dirs[1], "python3.13") + " (executable by all users, reporting version 3.13), which this Ember host does not have."
	if msg != want {
		t.Errorf("unavailable(python3.13) =\n%s\nwant\n%s", msg, want)
	}
}

func TestKnown(t *testing.T) {
	k := Known()
	for _, n := range []string{"provided.al2023", "provided.al2", "python3.11", "python3.12", "python3.13", "nodejs18.x", "nodejs20.x", "nodejs22.x"} {
		if !slices.Contains(k, n) || !IsKnown(n) {
			t.Errorf("%s is not known", n)
		}
	}
	if IsKnown("python2.7") || IsKnown("") {
		t.Error("python2.7 or \"\" known")
	}
	// Every available runtime is known, and provided ones always are.
	av := Available()
	for n := range av {
		if !IsKnown(n) {
			t.Errorf("available %s is not known", n)
		}
		if Unavailable(n) != "" {
			t.Errorf("Unavailable(%s) = %q for an available runtime", n, Unavailable(n))
		}
		if rt, ok := Lookup(n); !ok || rt != av[n] {
			t.Errorf("Lookup(%s) = %+v, %v", n, rt, ok)
		}
	}
	for _, n := range []string{"provided.al2023", "provided.al2"} {
		if !av[n].NeedsBootstrap {
			t.Errorf("%s: %+v", n, av[n])
		}
	}
	av["mutated"] = Runtime{}
	if _, ok := Available()["mutated"]; ok {
		t.Error("Available returns the shared map")
	}
}

func TestCommand(t *testing.T) {
	prog, args, env, err := Command(Runtime{Name: "provided.al2023", Family: FamilyProvided, NeedsBootstrap: true}, "ignored", Options{})
	if err != nil || prog != "/var/task/bootstrap" || args != nil || env != nil {
		t.Errorf("provided: %q %q %q %v", prog, args, env, err)
	}

	py := Runtime{Name: "python3.12", Family: FamilyPython, Version: "3.12", Interpreter: "/usr/bin/python3.12"}
	prog, args, env, err = Command(py, "app.handler", Options{})
	if err != nil || prog != "/usr/bin/python3.12" ||
		!slices.Equal(args, []string{"-u", "/var/runtime/bootstrap.py", "app.handler"}) ||
		!slices.Equal(env, []string{"PYTHONPATH=/var/runtime", "AWS_EXECUTION_ENV=AWS_Lambda_python3.12"}) {
		t.Errorf("python: %q %q %q %v", prog, args, env, err)
	}

	node := Runtime{Name: "nodejs20.x", Family: FamilyNode, Version: "20", Interpreter: "/usr/bin/node"}
	prog, args, env, err = Command(node, "index.handler", Options{MemoryMB: 128})
	if err != nil || prog != "/usr/bin/node" ||
		!slices.Equal(args, []string{"--expose-gc", "--max-http-header-size", "81920",
			"--max-semi-space-size=1", "--max-old-space-size=126", "/var/runtime/index.mjs", "index.handler"}) ||
		!slices.Equal(env, []string{
			"NODE_PATH=/opt/nodejs/node20/node_modules:/opt/nodejs/node_modules:/var/runtime/node_modules:/var/runtime:/var/task",
			"AWS_EXECUTION_ENV=AWS_Lambda_nodejs20.x"}) {
		t.Errorf("node: %q %q %q %v", prog, args, env, err)
	}
	_, args, env, _ = Command(node, "h.x", Options{RuntimeDir: "/rt", TaskDir: "/code", MemoryMB: 1024})
	if !slices.Contains(args, "--max-old-space-size=1008") || !slices.Contains(args, "--max-semi-space-size=8") ||
		args[len(args)-2] != "/rt/index.mjs" || !strings.HasSuffix(env[0], ":/rt/node_modules:/rt:/code") {
		t.Errorf("node with options: %q %q", args, env)
	}

	prog, args, _, _ = Command(py, "app.handler", Options{ExecWrapper: "/opt/wrapper.sh"})
	if prog != "/opt/wrapper.sh" || !slices.Equal(args, []string{"/usr/bin/python3.12", "-u", "/var/runtime/bootstrap.py", "app.handler"}) {
		t.Errorf("python with a wrapper: %q %q", prog, args)
	}
	prog, args, _, _ = Command(node, "index.handler", Options{ExecWrapper: "/opt/wrapper.sh"})
	if prog != "/opt/wrapper.sh" || args[0] != "/usr/bin/node" || args[len(args)-1] != "index.handler" {
		t.Errorf("node with a wrapper: %q %q", prog, args)
	}
	prog, _, _, _ = Command(Runtime{Name: "provided.al2", Family: FamilyProvided}, "x", Options{ExecWrapper: "/opt/wrapper.sh"})
	if prog != "/var/task/bootstrap" {
		t.Errorf("provided with a wrapper: %q", prog)
	}

	if _, _, _, err := Command(Runtime{Name: "python3.13", Family: FamilyPython}, "a.b", Options{}); err == nil {
		t.Error("python without an interpreter: no error")
	}
	if _, _, _, err := Command(Runtime{Name: "java21", Family: "java"}, "a.b", Options{}); err == nil {
		t.Error("unknown family: no error")
	}
}

func TestMergeEnv(t *testing.T) {
	base := []string{"A=1", "NODE_PATH=/mine", "B="}
	got := MergeEnv(base, []string{"NODE_PATH=/default", "C=3", "A=9", "C=4"})
	want := []string{"A=1", "NODE_PATH=/mine", "B=", "C=3"}
	if !slices.Equal(got, want) {
		t.Errorf("MergeEnv = %q, want %q", got, want)
	}
	if !slices.Equal(base, []string{"A=1", "NODE_PATH=/mine", "B="}) {
		t.Errorf("base changed: %q", base)
	}
}

func TestInstall(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "runtime")
	got, err := Install(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got != dir {
		t.Errorf("Install = %q, want %q", got, dir)
	}
	check := func() {
		t.Helper()
		fi, err := os.Stat(dir)
		if err != nil || fi.Mode().Perm() != 0o755 {
			t.Fatalf("dir: %v %v", fi.Mode(), err)
		}
		for src, dst := range map[string]string{"python/bootstrap.py": "bootstrap.py", "node/index.mjs": "index.mjs"} {
			want, _ := fs.ReadFile(clients, src)
			b, err := os.ReadFile(filepath.Join(dir, dst))
			if err != nil || !bytes.Equal(b, want) || len(want) == 0 {
				t.Errorf("%s: %d bytes, %v", dst, len(b), err)
			}
			fi, _ := os.Stat(filepath.Join(dir, dst))
			if fi.Mode().Perm() != 0o644 {
				t.Errorf("%s: mode %v", dst, fi.Mode())
			}
		}
		entries, _ := os.ReadDir(dir)
		if len(entries) != 2 {
			t.Errorf("dir holds %d entries, want 2", len(entries))
		}
	}
	check()
	// Again, over a stale file and a tightened mode.
	os.WriteFile(filepath.Join(dir, "index.mjs"), []byte("stale"), 0o600)
	os.Chmod(dir, 0o700)
	if _, err := Install(dir); err != nil {
		t.Fatal(err)
	}
	check()
}
