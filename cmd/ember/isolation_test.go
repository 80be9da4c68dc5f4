package main

// Isolation tests: a hostile aws-lambda-go function
// (testdata/functions/hostile) run by a real `ember serve` through the
// real SDK client tries to leave its sandbox; each test asserts on what
// it saw from inside and on what the host sees from outside.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"

	"github.com/emberfn/ember/internal/auth"
	"github.com/emberfn/ember/internal/sandbox"
)

var (
	builtMu sync.Mutex
	built   = map[string][]byte{} // function directory -> zip
)

// functionZip builds testdata/functions/<name> (an aws-lambda-go
// function) as a static bootstrap and zips it, once per test binary.
func functionZip(t *testing.T, name string) []byte {
	t.Helper()
	builtMu.Lock()
	defer builtMu.Unlock()
	if z, ok := built[name]; ok {
		return z
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "bootstrap")
	cmd := exec.Command("go", "build", "-trimpath", "-o", bin, "./testdata/functions/"+name)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the %s function: %v\n%s", name, err, out)
	}
	b, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	z := makeZip(t, zipEntry{name: "bootstrap", mode: 0o755, body: string(b)})
	built[name] = z
	return z
}

// requireRootCI fails without root when CI=true, else skips.
func requireRootCI(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("isolation tests need root (CI=true: failing instead of skipping)")
		}
		t.Skip("needs root")
	}
}

func createHostile(t *testing.T, c *lambda.Client, name string, edit func(*lambda.CreateFunctionInput)) {
	t.Helper()
	in := createInput(name, functionZip(t, "hostile"))
	if edit != nil {
		edit(in)
	}
	if _, err := c.CreateFunction(context.Background(), in); err != nil {
		t.Fatal(err)
	}
}

// hostileReport is what the hostile function's "probe" mode answers.
type hostileReport struct {
	UID, GID, EUID int
	Groups         []int
	PID            int
	Hostname       string
	Status         map[string]string
	Processes      []string
	Root, Tmp      []string
	Task           []string
	Writes         map[string]string
	TmpBytes       int64 `json:"tmp_bytes"`
	Env            map[string]string
	Dial           map[string]string
	Interfaces     []string
	Syscalls       map[string]string
}

// invokeHostile invokes fn with ev and decodes the answer into out; a
// function error fails the test.
func invokeHostile(t *testing.T, c *lambda.Client, fn string, ev map[string]any, out any) {
	t.Helper()
	res, body := invokeJSON(t, c, fn, ev, false)
	if res.FunctionError != nil {
		t.Fatalf("%s %v: function error %s: %v", fn, ev["mode"], aws.ToString(res.FunctionError), body)
	}
	if err := json.Unmarshal(res.Payload, out); err != nil {
		t.Fatalf("%s: %v: %s", fn, err, res.Payload)
	}
}

// sandboxProcs lists the host pids of the processes in this process's
// sandboxes: those whose memory cgroup lies under ember-<our pid>/.
func sandboxProcs() []int {
	marker := "/ember-" + strconv.Itoa(os.Getpid()) + "/"
	var out []int
	es, _ := os.ReadDir("/proc")
	for _, e := range es {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/cgroup")
		if err == nil && bytes.Contains(b, []byte(marker)) && !pooledInit(pid) {
			out = append(out, pid)
		}
	}
	return out
}

// hostStatus reads fields of /proc/<pid>/status.
func hostStatus(pid int) map[string]string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	m := map[string]string{}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok {
			m[k] = strings.Join(strings.Fields(v), " ")
		}
	}
	return m
}

// hostAddrs returns a non-loopback IPv4 address of this host, if any.
func hostAddr() string {
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && !ipn.IP.IsLoopback() && ipn.IP.To4() != nil {
			return ipn.IP.String()
		}
	}
	return ""
}

func TestHostileFunctionIsContained(t *testing.T) {
	requireRootCI(t)
	srv, c, _ := startInvokeEmber(t)
	// A host service on the loopback, like NATS or a database would be.
	svc, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	u, _ := url.Parse(srv.url)
	_, emberPort, _ := net.SplitHostPort(u.Host)
	dial := []string{u.Host, svc.Addr().String(), "127.0.0.1:9001", "1.1.1.1:443"}
	wildcard, err := net.Listen("tcp", "0.0.0.0:0") // a service on every address
	if err != nil {
		t.Fatal(err)
	}
	defer wildcard.Close()
	_, wport, _ := net.SplitHostPort(wildcard.Addr().String())
	if ip := hostAddr(); ip != "" {
		dial = append(dial, net.JoinHostPort(ip, emberPort), net.JoinHostPort(ip, wport))
	}
	createHostile(t, c, "hostile", func(in *lambda.CreateFunctionInput) {
		in.Environment = &types.Environment{Variables: map[string]string{"SECRET": "alice-secret"}}
	})
	var r hostileReport
	invokeHostile(t, c, "hostile", map[string]any{"mode": "probe", "dial": dial}, &r)
	t.Logf("inside: %+v", r)

	// Only its own processes: the runtime is PID 1 and alone.
	if r.PID != 1 || !slices.Equal(r.Processes, []string{"1"}) {
		t.Errorf("processes visible: %v (own pid %d), want only 1", r.Processes, r.PID)
	}
	// Read-only code and system; private writable /tmp of the configured size.
	for p, want := range map[string]string{"/var/task/x": "EROFS", "/x": "EROFS", "/usr/x": "EROFS", "/etc/x": "EROFS",
		"/proc/sys/kernel/hostname": "EROFS", "/tmp/x": "ok"} {
		if r.Writes[p] != want {
			t.Errorf("write %s: %s, want %s", p, r.Writes[p], want)
		}
	}
	if r.TmpBytes != 512<<20 {
		t.Errorf("/tmp is %d bytes, want 512 MB", r.TmpBytes)
	}
	for _, host := range []string{"root", "home", "work", "srv", "boot", "mnt", "run", "sys"} {
		if slices.Contains(r.Root, host) {
			t.Errorf("the host's /%s is visible: / = %v", host, r.Root)
		}
	}
	if !slices.Equal(r.Task, []string{"bootstrap"}) {
		t.Errorf("/var/task = %v", r.Task)
	}
	// An unprivileged user without capabilities.
	if r.UID != 993 || r.EUID != 993 || r.GID != 990 || len(r.Groups) != 0 {
		t.Errorf("uid %d euid %d gid %d groups %v", r.UID, r.EUID, r.GID, r.Groups)
	}
	for _, k := range []string{"CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"} {
		if r.Status[k] != "0000000000000000" {
			t.Errorf("%s = %q inside", k, r.Status[k])
		}
	}
	if r.Status["NoNewPrivs"] != "1" || r.Status["Seccomp"] != "2" {
		t.Errorf("NoNewPrivs %q Seccomp %q", r.Status["NoNewPrivs"], r.Status["Seccomp"])
	}
	// No way to the host's services, nor anywhere else; only its own
	// Runtime API.
	for a, got := range r.Dial {
		want := "ECONNREFUSED"
		switch {
		case a == "127.0.0.1:9001":
			want = "ok"
		case !strings.HasPrefix(a, "127."):
			want = "ENETUNREACH"
		}
		if got != want {
			t.Errorf("dial %s from inside: %s, want %s", a, got, want)
		}
	}
	if !slices.Equal(r.Interfaces, []string{"lo"}) {
		t.Errorf("interfaces %v, want only lo", r.Interfaces)
	}
	// The dangerous system calls fail.
	want := map[string]string{"mount": "EPERM", "umount": "EPERM", "unshare_user": "EPERM", "unshare_net": "EPERM",
		"chroot": "EPERM", "setuid0": "EPERM", "ptrace": "EPERM", "clone_newuser": "EPERM", "tty": "ENXIO",
		// kill(-1, 0) reaches no process outside the sandbox's PID namespace
		// (and inside, only itself, which kill(-1) skips).
		"kill_host_init": "ESRCH"}
	if runtime.GOARCH == "amd64" {
		want["i386_getpid"] = "-38" // ENOSYS: the i386 entry is closed
	}
	for k, v := range want {
		if r.Syscalls[k] != v {
			t.Errorf("%s: %s, want %s", k, r.Syscalls[k], v)
		}
	}

	// From outside: the runtime is an unprivileged host uid with no
	// capabilities, in namespaces of its own.
	procs := sandboxProcs()
	if len(procs) != 1 {
		t.Fatalf("sandbox processes on the host: %v, want 1", procs)
	}
	st := hostStatus(procs[0])
	uids := strings.Fields(st["Uid"])
	if len(uids) != 4 {
		t.Fatalf("host status: %v", st)
	}
	for _, u := range uids {
		n, _ := strconv.Atoi(u)
		if n < sandbox.IDRangeSize || (n-993)%sandbox.IDRangeSize != 0 {
			t.Errorf("host uid %d: want a mapped id (range start + 993), not a host user", n)
		}
	}
	if st["CapEff"] != "0000000000000000" || st["CapBnd"] != "0000000000000000" || st["NoNewPrivs"] != "1" || st["Seccomp"] != "2" {
		t.Errorf("host view: %v", st)
	}
	for _, ns := range []string{"user", "pid", "net", "mnt", "ipc", "uts", "cgroup"} {
		mine, _ := os.Readlink("/proc/self/ns/" + ns)
		theirs, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/%s", procs[0], ns))
		if mine == theirs || theirs == "" {
			t.Errorf("%s namespace shared with the host: %s", ns, theirs)
		}
	}
	// The Ember API is unaffected.
	resp, err := http.Get(srv.url + "/healthz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("healthz after the probe: %v %v", resp, err)
	}
	resp.Body.Close()
}

// TestHostileTenantsAreIsolated: files and environment of another
// function, of the same account or of another one, are invisible.
func TestHostileTenantsAreIsolated(t *testing.T) {
	requireRootCI(t)
	ctx := context.Background()
	srv, alice, dp := startInvokeEmber(t)
	credFile := filepath.Join(t.TempDir(), "creds")
	var stdout, stderr bytes.Buffer
	if err := run(ctx, []string{"account", "create", "bob", "--endpoint", srv.url, "--data-dir", srv.dataDir, "--write", credFile}, &stdout, &stderr); err != nil {
		t.Fatalf("account create: %v %s", err, stderr.String())
	}
	id, secret, err := auth.ReadCredentials(credFile, "bob")
	if err != nil {
		t.Fatal(err)
	}
	bob := srv.client(aws.Credentials{AccessKeyID: id, SecretAccessKey: secret})
	env := func(v string) func(*lambda.CreateFunctionInput) {
		return func(in *lambda.CreateFunctionInput) {
			in.Environment = &types.Environment{Variables: map[string]string{"SECRET": v}}
		}
	}
	createHostile(t, alice, "hostile", env("alice-secret"))
	createHostile(t, alice, "sibling", env("sibling-secret"))
	createHostile(t, bob, "hostile", env("bob-secret"))

	var w map[string]string
	invokeHostile(t, alice, "hostile", map[string]any{"mode": "write", "name": "alice-file", "body": "alice-data"}, &w)
	if w["written"] != "ok" {
		t.Fatalf("alice writes /tmp: %v", w)
	}
	for _, who := range []struct {
		name   string
		c      *lambda.Client
		fn     string
		secret string
	}{{"bob, another account", bob, "hostile", "bob-secret"}, {"another function of alice", alice, "sibling", "sibling-secret"}} {
		var r hostileReport
		invokeHostile(t, who.c, who.fn, map[string]any{"mode": "probe"}, &r)
		if slices.Contains(r.Tmp, "alice-file") {
			t.Errorf("%s sees alice's /tmp file: %v", who.name, r.Tmp)
		}
		if r.Env["SECRET"] != who.secret {
			t.Errorf("%s: SECRET=%q, want %q", who.name, r.Env["SECRET"], who.secret)
		}
		for k, v := range r.Env {
			if strings.Contains(v, "alice-secret") {
				t.Errorf("%s sees alice's secret in %s", who.name, k)
			}
		}
		if !slices.Equal(r.Processes, []string{"1"}) {
			t.Errorf("%s sees processes %v", who.name, r.Processes)
		}
	}
	// Three live sandboxes, each in its own host id range.
	if n := dp.worker.Sandboxes(); n != 3 {
		t.Fatalf("%d sandboxes, want 3", n)
	}
	ranges := map[int]bool{}
	for _, p := range sandboxProcs() {
		u, _ := strconv.Atoi(strings.Fields(hostStatus(p)["Uid"])[0])
		ranges[u/sandbox.IDRangeSize] = true
	}
	if len(ranges) != 3 {
		t.Errorf("host id ranges of the 3 sandboxes: %v, want 3 distinct", ranges)
	}
	// alice's file is still there for alice (the same warm sandbox).
	var r hostileReport
	invokeHostile(t, alice, "hostile", map[string]any{"mode": "probe"}, &r)
	if !slices.Contains(r.Tmp, "alice-file") || r.Env["SECRET"] != "alice-secret" {
		t.Errorf("alice's own sandbox: /tmp %v, SECRET %q", r.Tmp, r.Env["SECRET"])
	}
}

// TestHostileResourceAttacks: a memory hog is killed and reported, a fork
// bomb stops at the pids limit, /tmp fills up to its size only, a daemon
// that double-forks and ignores SIGTERM dies with its sandbox, and the
// host (Ember's API, other functions) is unaffected throughout.
func TestHostileResourceAttacks(t *testing.T) {
	requireRootCI(t)
	ctx := context.Background()
	srv, c, dp := startInvokeEmber(t)
	healthy := func(when string) {
		t.Helper()
		resp, err := http.Get(srv.url + "/healthz")
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("healthz %s: %v %v", when, resp, err)
		}
		resp.Body.Close()
	}
	createHostile(t, c, "bystander", nil)
	var r hostileReport
	invokeHostile(t, c, "bystander", map[string]any{"mode": "probe"}, &r)

	// Memory hog.
	createHostile(t, c, "hog", func(in *lambda.CreateFunctionInput) { in.MemorySize = aws.Int32(128) })
	out, body := invokeJSON(t, c, "hog", map[string]any{"mode": "alloc", "n": 1024}, true)
	if aws.ToString(out.FunctionError) != "Unhandled" || body["errorType"] != "Runtime.ExitError" {
		t.Errorf("memory hog: %v %s", out.FunctionError, out.Payload)
	}
	if !strings.Contains(logOf(t, out), "Runtime.OutOfMemory") {
		t.Errorf("memory hog log:\n%s", logOf(t, out))
	}
	healthy("after the memory hog")

	// Fork bomb, bounded by the pids limit (1,024 processes and threads).
	createHostile(t, c, "bomb", func(in *lambda.CreateFunctionInput) {
		in.MemorySize, in.Timeout = aws.Int32(1024), aws.Int32(60)
	})
	var fb struct {
		Started int
		Error   string
	}
	invokeHostile(t, c, "bomb", map[string]any{"mode": "forkbomb", "n": 5000}, &fb)
	t.Logf("fork bomb: %+v", fb)
	if fb.Error != "EAGAIN" || fb.Started >= 1024 || fb.Started < 900 {
		t.Errorf("fork bomb: started %d, error %s; want EAGAIN at the limit of 1,024", fb.Started, fb.Error)
	}
	healthy("after the fork bomb")

	// /tmp fills up to its size (512 MB) and no further.
	createHostile(t, c, "filler", func(in *lambda.CreateFunctionInput) {
		in.MemorySize, in.Timeout = aws.Int32(1024), aws.Int32(60)
	})
	var fl struct {
		Written int64
		Error   string
	}
	invokeHostile(t, c, "filler", map[string]any{"mode": "fill"}, &fl)
	if fl.Error != "ENOSPC" || fl.Written != 512<<20 {
		t.Errorf("filling /tmp: %+v, want ENOSPC after 512 MB", fl)
	}

	// A double-forked daemon that ignores SIGTERM.
	createHostile(t, c, "daemon", nil)
	var d map[string]string
	invokeHostile(t, c, "daemon", map[string]any{"mode": "daemon"}, &d)
	if d["daemon"] != "ok" {
		t.Fatalf("daemon: %v", d)
	}
	before, boxes := sandboxProcs(), dp.worker.Sandboxes()
	if _, err := c.DeleteFunction(ctx, &lambda.DeleteFunctionInput{FunctionName: aws.String("daemon")}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the daemon's sandbox to go", func() bool { return dp.worker.Sandboxes() == boxes-1 })
	// Its runtime and the daemon are gone; the others' processes stay.
	waitFor(t, "the daemon to die", func() bool { return len(sandboxProcs()) == len(before)-2 })

	// The bystander still answers from the same sandbox.
	var r2 hostileReport
	invokeHostile(t, c, "bystander", map[string]any{"mode": "probe"}, &r2)
	if r2.Env["AWS_LAMBDA_LOG_STREAM_NAME"] != r.Env["AWS_LAMBDA_LOG_STREAM_NAME"] {
		t.Error("the bystander's sandbox was replaced")
	}
	healthy("at the end")
}

// The process backend has no isolation: it is only for machines where the
// native sandbox cannot run, so as root it is refused, clearly.
func TestProcessBackendRefusedAsRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("this suite runs as root")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := serve(ctx, serveConfig{Listen: "127.0.0.1:0", DataDir: t.TempDir(), Region: "us-east-1", Sandbox: "process"}, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "--sandbox=process is for machines where the native sandbox cannot run") {
		t.Fatalf("serve --sandbox=process as root: %v", err)
	}
}
