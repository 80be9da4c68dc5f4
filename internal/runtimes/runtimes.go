// Package runtimes knows Lambda's managed runtimes as Ember serves them:
// which runtime names this host can run truthfully, the runtime clients
// Ember ships for them (in Python and in JavaScript, embedded here), and the
// command a sandbox runs for a function of each.
//
// A provided.* function brings its own /var/task/bootstrap. A python3.X or
// nodejsN.x function is run by the host's own interpreter, which the sandbox
// sees through its read-only /usr, with Ember's runtime client mounted
// read-only at /var/runtime: python/bootstrap.py and node/index.mjs, which
// talk to the Runtime API like AWS's runtime interface clients.
//
// A runtime is available only if its interpreter is here and says it is the
// right version: python3.X needs /usr/local/bin/python3.X or
// /usr/bin/python3.X reporting X; nodejsN.x needs, in /usr/local/bin or
// /usr/bin, a node, nodejs, nodeN, node-N or nodejsN reporting major
// version N (a versioned name that reports another major is ignored), so
// that several Node.js majors can be served at once. The
// interpreter must resolve (through symbolic links) to a file under /usr,
// /bin, /sbin, /lib, /lib64 or /etc, the host directories a sandbox sees,
// and be executable by others, since functions run as an unprivileged user.
package runtimes

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Families of runtimes.
const (
	FamilyProvided = "provided"
	FamilyPython   = "python"
	FamilyNode     = "nodejs"
)

// Paths inside the sandbox.
const (
	// SandboxRuntimeDir is where the directory Install returns is mounted
	// (read-only); LAMBDA_RUNTIME_DIR names it.
	SandboxRuntimeDir = "/var/runtime"
	// SandboxTaskDir is where the function's code is (LAMBDA_TASK_ROOT).
	SandboxTaskDir = "/var/task"
)

// Runtime is a runtime this host can serve.
type Runtime struct {
	// Name is Lambda's runtime identifier, e.g. "python3.11".
	Name string
	// Family is FamilyProvided, FamilyPython or FamilyNode.
	Family string
	// Version is the language version: "3.11" for python3.11, "20" for
	// nodejs20.x, "" for provided runtimes.
	Version string
	// Interpreter is the interpreter's absolute path on the host, the same
	// path inside the sandbox (its /usr is the host's); "" for provided
	// runtimes.
	Interpreter string
	// NeedsBootstrap tells whether a package must have an executable
	// bootstrap at its root (the provided runtimes).
	NeedsBootstrap bool
}

// knownRuntime is a runtime name Ember knows, available or not.
type knownRuntime struct {
	name, family, version string
}

// known lists every runtime Ember knows, in the order Known returns them.
var known = []knownRuntime{
	{"provided.al2023", FamilyProvided, ""},
	{"provided.al2", FamilyProvided, ""},
	{"python3.9", FamilyPython, "3.9"},
	{"python3.10", FamilyPython, "3.10"},
	{"python3.11", FamilyPython, "3.11"},
	{"python3.12", FamilyPython, "3.12"},
	{"python3.13", FamilyPython, "3.13"},
	{"python3.14", FamilyPython, "3.14"},
	{"nodejs18.x", FamilyNode, "18"},
	{"nodejs20.x", FamilyNode, "20"},
	{"nodejs22.x", FamilyNode, "22"},
	{"nodejs24.x", FamilyNode, "24"},
}

func lookupKnown(name string) (knownRuntime, bool) {
	for _, k := range known {
		if k.name == name {
			return k, true
		}
	}
	return knownRuntime{}, false
}

// Known is every runtime name Ember knows, whether this host can serve it
// or not.
func Known() []string {
	names := make([]string, len(known))
	for i, k := range known {
		names[i] = k.name
	}
	return names
}

// IsKnown reports whether name is a runtime Ember knows.
func IsKnown(name string) bool {
	_, ok := lookupKnown(name)
	return ok
}

// host is what probing this host found.
type host struct {
	available map[string]Runtime
	// nodes are the Node.js binaries found, with the version each reported
	// (for Unavailable's message).
	nodes []foundNode
}

type foundNode struct {
	path, version string
}

// prober finds interpreters. The zero value is not usable; see
// defaultProber.
type prober struct {
	// dirs are searched in order for interpreters.
	dirs []string
	// roots are the host directories visible in a sandbox: an interpreter
	// must resolve to a file under one of them.
	roots []string
	// run runs an interpreter and returns its standard output.
	run func(ctx context.Context, name string, args ...string) (string, error)
}

var defaultProber = prober{
	dirs:  []string{"/usr/local/bin", "/usr/bin"},
	roots: []string{"/usr", "/bin", "/sbin", "/lib", "/lib64", "/etc"},
	run:   runCommand,
}

func runCommand(ctx context.Context, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = []string{"PATH=/usr/local/bin:/usr/bin:/bin", "LANG=C.UTF-8"}
	cmd.Dir = "/"
	out, err := cmd.Output()
	return string(out), err
}

// pythonProbe imports what bootstrap.py needs and prints the version, so
// that an interpreter without its standard library is not offered.
const pythonProbe = "import sys, json, http.client, importlib, traceback, logging, decimal; " +
	"sys.stdout.write('%d.%d' % sys.version_info[:2])"

var (
	hostOnce sync.Once
	thisHost *host
)

func probed() *host {
	hostOnce.Do(func() { thisHost = defaultProber.probe(context.Background()) })
	return thisHost
}

// probe finds the runtimes this host can serve.
func (p prober) probe(ctx context.Context) *host {
	h := &host{available: map[string]Runtime{}}
	for _, k := range known {
		if k.family == FamilyProvided {
			h.available[k.name] = Runtime{Name: k.name, Family: FamilyProvided, NeedsBootstrap: true}
		}
	}
	for _, k := range known {
		if k.family != FamilyPython {
			continue
		}
		for _, dir := range p.dirs {
			bin := filepath.Join(dir, "python"+k.version)
			if !p.usable(bin) {
				continue
			}
			out, err := p.run(ctx, bin, "-c", pythonProbe)
			if err == nil && strings.TrimSpace(out) == k.version {
				h.available[k.name] = Runtime{Name: k.name, Family: FamilyPython, Version: k.version, Interpreter: bin}
				break
			}
		}
	}
	seen := map[string]bool{}
	for _, dir := range p.dirs {
		for _, cand := range nodeNames() {
			bin := filepath.Join(dir, cand.name)
			if !p.usable(bin) {
				continue
			}
			real, _ := filepath.EvalSymlinks(bin)
			if seen[real] {
				continue
			}
			seen[real] = true
			out, err := p.run(ctx, bin, "--version")
			if err != nil {
				continue
			}
			version := strings.TrimSpace(out)
			h.nodes = append(h.nodes, foundNode{path: bin, version: version})
			major, _, _ := strings.Cut(strings.TrimPrefix(version, "v"), ".")
			if _, err := strconv.Atoi(major); err != nil {
				continue
			}
			if cand.major != "" && cand.major != major {
				continue // node20 that is not Node.js 20
			}
			name := "nodejs" + major + ".x"
			if k, ok := lookupKnown(name); ok {
				if _, dup := h.available[name]; !dup {
					h.available[name] = Runtime{Name: name, Family: FamilyNode, Version: k.version, Interpreter: bin}
				}
			}
		}
	}
	return h
}

// nodeCandidate is a file name a Node.js interpreter may have; major is
// the major version a versioned name promises ("" for node and nodejs).
type nodeCandidate struct {
	name, major string
}

// nodeNames are the names a Node.js interpreter is looked for under, in
// order: node and nodejs (whatever version they report), then for each
// Node.js runtime Ember knows, nodeN, node-N and nodejsN.
func nodeNames() []nodeCandidate {
	names := []nodeCandidate{{"node", ""}, {"nodejs", ""}}
	for _, k := range known {
		if k.family == FamilyNode {
			names = append(names, nodeCandidate{"node" + k.version, k.version},
				nodeCandidate{"node-" + k.version, k.version}, nodeCandidate{"nodejs" + k.version, k.version})
		}
	}
	return names
}

// usable reports whether bin is an executable file that an unprivileged
// user in a sandbox can run: a regular file, executable by others, that
// resolves to a path under one of p.roots.
func (p prober) usable(bin string) bool {
	fi, err := os.Stat(bin)
	if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm()&0o001 == 0 {
		return false
	}
	real, err := filepath.EvalSymlinks(bin)
	if err != nil {
		return false
	}
	return underAny(real, p.roots) && underAny(bin, p.roots)
}

func underAny(p string, roots []string) bool {
	for _, r := range roots {
		if p == r || strings.HasPrefix(p, r+"/") {
			return true
		}
	}
	return false
}

// Available is every runtime this host can serve, by name. The host is
// probed once per process (each interpreter is run once); the map is the
// caller's.
func Available() map[string]Runtime {
	h := probed()
	m := make(map[string]Runtime, len(h.available))
	for k, v := range h.available {
		m[k] = v
	}
	return m
}

// Lookup returns the available runtime called name.
func Lookup(name string) (Runtime, bool) {
	rt, ok := probed().available[name]
	return rt, ok
}

// Unavailable explains why name cannot be used on this host, naming what
// is missing; it is "" for an available runtime.
func Unavailable(name string) string {
	return probed().unavailable(name, defaultProber.dirs)
}

func (h *host) unavailable(name string, dirs []string) string {
	if _, ok := h.available[name]; ok {
		return ""
	}
	k, ok := lookupKnown(name)
	if !ok {
		return fmt.Sprintf("Runtime %s is not a runtime Ember knows; it knows %s.", name, strings.Join(Known(), ", "))
	}
	const lacks = "which this Ember host does not have"
	switch k.family {
	case FamilyPython:
		paths := make([]string, len(dirs))
		for i, d := range dirs {
			paths[i] = filepath.Join(d, "python"+k.version)
		}
		return fmt.Sprintf("Runtime %s needs Python %s as %s (executable by all users, reporting version %s), %s.",
			name, k.version, strings.Join(paths, " or "), k.version, lacks)
	case FamilyNode:
		v := k.version
		msg := fmt.Sprintf("Runtime %s needs Node.js %s as node, nodejs, node%s, node-%s or nodejs%s in %s (executable by all users, reporting version %s), %s",
			name, v, v, v, v, strings.Join(dirs, " or "), v, lacks)
		if len(h.nodes) == 0 {
			return msg + "."
		}
		have := make([]string, len(h.nodes))
		for i, n := range h.nodes {
			have[i] = fmt.Sprintf("Node.js %s (%s)", n.version, n.path)
		}
		return msg + "; it has " + strings.Join(have, ", ") + "."
	}
	return fmt.Sprintf("Runtime %s is not available on this Ember host.", name)
}

// The runtime clients, embedded; Install writes them out.
//
//go:embed python/bootstrap.py node/index.mjs
var clients embed.FS

// Files in the runtime directory (as seen at /var/runtime).
const (
	pythonClient = "bootstrap.py"
	nodeClient   = "index.mjs"
)

// Install writes the runtime clients into dir (created if needed, mode
// 0755, files 0644 so that a sandbox's unprivileged user can read them) and
// returns dir's absolute path: the host directory to mount read-only at
// /var/runtime. Call it once when a worker starts; files already there are
// replaced.
func Install(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		return "", fmt.Errorf("runtimes: install: %w", err)
	}
	if err := os.Chmod(abs, 0o755); err != nil {
		return "", fmt.Errorf("runtimes: install: %w", err)
	}
	for src, dst := range map[string]string{"python/bootstrap.py": pythonClient, "node/index.mjs": nodeClient} {
		b, err := fs.ReadFile(clients, src)
		if err != nil {
			return "", err
		}
		if err := writeFileAtomic(filepath.Join(abs, dst), b, 0o644); err != nil {
			return "", fmt.Errorf("runtimes: install: %w", err)
		}
	}
	return abs, nil
}

func writeFileAtomic(name string, b []byte, mode os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(name), "."+filepath.Base(name)+".*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(b)
	if err == nil {
		err = f.Chmod(mode)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, name)
	}
	if err != nil {
		os.Remove(tmp)
	}
	return err
}

// Options changes where Command says things are. The zero value is the
// sandbox's layout.
type Options struct {
	// RuntimeDir is where the runtime clients are (default /var/runtime).
	RuntimeDir string
	// TaskDir is where the function's code is (default /var/task).
	TaskDir string
	// MemoryMB, if positive, is the function's memory: Node.js's heap is
	// sized from it as Lambda does, so that V8 collects garbage before the
	// sandbox's memory limit kills it.
	MemoryMB int
	// ExecWrapper is the function's AWS_LAMBDA_EXEC_WRAPPER, if any: for
	// the Python and Node.js runtimes the program becomes the wrapper,
	// given the interpreter's command line as its arguments, as on Lambda.
	// Provided runtimes ignore it (as on Lambda).
	ExecWrapper string
}

// ErrUnknownFamily is returned by Command for a Runtime of no known family.
var ErrUnknownFamily = errors.New("runtimes: unknown runtime family")

// Command is what the sandbox runs for a function of runtime rt with this
// handler: the program's path and arguments as seen inside the sandbox, and
// environment variables to add to the function's (with MergeEnv: a
// variable the function sets itself, such as NODE_PATH, wins, as on
// Lambda). The runtime clients also read _HANDLER, LAMBDA_TASK_ROOT and the
// other reserved variables the worker sets.
func Command(rt Runtime, handler string, opt Options) (program string, args []string, env []string, err error) {
	if opt.RuntimeDir == "" {
		opt.RuntimeDir = SandboxRuntimeDir
	}
	if opt.TaskDir == "" {
		opt.TaskDir = SandboxTaskDir
	}
	switch rt.Family {
	case FamilyProvided:
		return path.Join(opt.TaskDir, "bootstrap"), nil, nil, nil
	case FamilyPython:
		if rt.Interpreter == "" {
			return "", nil, nil, fmt.Errorf("runtimes: %s has no interpreter on this host", rt.Name)
		}
		// -u: unbuffered stdout and stderr, so that the function's output
		// reaches its log as it is written (as Lambda's runtime does).
		args = []string{"-u", path.Join(opt.RuntimeDir, pythonClient), handler}
		env = []string{
			"PYTHONPATH=" + opt.RuntimeDir,
			"AWS_EXECUTION_ENV=AWS_Lambda_" + rt.Name,
		}
		program, args = wrap(opt.ExecWrapper, rt.Interpreter, args)
		return program, args, env, nil
	case FamilyNode:
		if rt.Interpreter == "" {
			return "", nil, nil, fmt.Errorf("runtimes: %s has no interpreter on this host", rt.Name)
		}
		args = []string{"--expose-gc", "--max-http-header-size", "81920"}
		if opt.MemoryMB > 0 {
			// Lambda's sizing: new space is 1/64 of the memory, each of its
			// two semi-spaces half of that; old space the rest.
			newSpace := opt.MemoryMB / 64
			args = append(args,
				"--max-semi-space-size="+strconv.Itoa(max(1, newSpace/2)),
				"--max-old-space-size="+strconv.Itoa(opt.MemoryMB-newSpace))
		}
		args = append(args, path.Join(opt.RuntimeDir, nodeClient), handler)
		env = []string{
			"NODE_PATH=" + strings.Join([]string{
				"/opt/nodejs/node" + rt.Version + "/node_modules",
				"/opt/nodejs/node_modules",
				path.Join(opt.RuntimeDir, "node_modules"),
				opt.RuntimeDir,
				opt.TaskDir,
			}, ":"),
			"AWS_EXECUTION_ENV=AWS_Lambda_" + rt.Name,
		}
		program, args = wrap(opt.ExecWrapper, rt.Interpreter, args)
		return program, args, env, nil
	}
	return "", nil, nil, fmt.Errorf("%w %q (runtime %s)", ErrUnknownFamily, rt.Family, rt.Name)
}

// wrap puts an exec wrapper in front of a command line.
func wrap(wrapper, program string, args []string) (string, []string) {
	if wrapper == "" {
		return program, args
	}
	return path.Clean(wrapper), append([]string{program}, args...)
}

// MergeEnv returns base followed by the entries of extra whose names base
// does not set: an environment has each name once, since C's getenv takes
// the first and Python's os.environ the last.
func MergeEnv(base, extra []string) []string {
	names := make(map[string]bool, len(base))
	for _, kv := range base {
		k, _, _ := strings.Cut(kv, "=")
		names[k] = true
	}
	out := slices.Clip(base)
	for _, kv := range extra {
		k, _, _ := strings.Cut(kv, "=")
		if !names[k] {
			names[k] = true
			out = append(out, kv)
		}
	}
	return out
}
