//go:build linux

package sandbox

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
)

// helperSource is the program the tests run inside sandboxes, built
// static by TestMain. Each argument is a command, run in order; each
// prints one line (or several, each prefixed) to stdout.
const helperSource = `package main

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	for _, a := range os.Args[1:] {
		cmd, arg, _ := strings.Cut(a, ":")
		run(cmd, arg)
	}
}

func run(cmd, arg string) {
	switch cmd {
	case "hello":
		fmt.Println("hello")
	case "id":
		h, _ := os.Hostname()
		g, _ := os.Getgroups()
		fmt.Printf("id pid=%d uid=%d gid=%d euid=%d egid=%d groups=%v hostname=%s\n",
			os.Getpid(), os.Getuid(), os.Getgid(), os.Geteuid(), os.Getegid(), g, h)
	case "env":
		for _, e := range os.Environ() {
			fmt.Printf("env %q\n", e)
		}
	case "cwd":
		d, err := os.Getwd()
		fmt.Printf("cwd %s %v\n", d, err)
	case "ls":
		es, err := os.ReadDir(arg)
		var names []string
		for _, e := range es {
			names = append(names, e.Name())
		}
		sort.Strings(names)
		fmt.Printf("ls %s %s %v\n", arg, strings.Join(names, ","), err)
	case "cat":
		b, err := os.ReadFile(arg)
		fmt.Printf("cat %s %q %v\n", arg, b, err)
	case "write":
		err := os.WriteFile(arg, []byte("x"), 0o644)
		fmt.Printf("write %s %v\n", arg, err)
	case "statfs":
		var st syscall.Statfs_t
		err := syscall.Statfs(arg, &st)
		fmt.Printf("statfs %s %d %v\n", arg, int64(st.Blocks)*st.Bsize, err)
	case "status":
		b, _ := os.ReadFile("/proc/self/status")
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "CapEff:") || strings.HasPrefix(l, "NoNewPrivs:") {
				fmt.Println("status", strings.Join(strings.Fields(l), " "))
			}
		}
	case "ps":
		es, _ := os.ReadDir("/proc")
		var pids []string
		for _, e := range es {
			if _, err := strconv.Atoi(e.Name()); err == nil {
				pids = append(pids, e.Name())
			}
		}
		fmt.Printf("ps %s\n", strings.Join(pids, ","))
	case "fork":
		n, _ := strconv.Atoi(arg)
		started := 0
		var err error
		for ; started < n; started++ {
			c := exec.Command("/proc/self/exe", "sleep:1h")
			if err = c.Start(); err != nil {
				break
			}
		}
		fmt.Printf("fork started=%d err=%v\n", started, err)
	case "alloc":
		n, _ := strconv.Atoi(arg)
		b := make([]byte, n<<20)
		for i := 0; i < len(b); i += 4096 {
			b[i] = 1
		}
		fmt.Printf("alloc %d ok\n", n)
	case "sleep":
		d, _ := time.ParseDuration(arg)
		time.Sleep(d)
	case "dial":
		c, err := net.DialTimeout("tcp", arg, 2*time.Second)
		if err == nil {
			fmt.Fprintf(c, "hello from inside\n")
			c.Close()
		}
		fmt.Printf("dial %s %v\n", arg, err)
	case "exit":
		n, _ := strconv.Atoi(arg)
		os.Exit(n)
	default:
		fmt.Printf("unknown %s\n", cmd)
		os.Exit(100)
	}
}
`

// helperDir holds the built helper ("helper"); it is mounted at /var/task.
var helperDir string

func TestMain(m *testing.M) {
	if os.Getenv(orphanParentEnv) != "" {
		runOrphanParent() // does not return
	}
	if os.Geteuid() == 0 {
		dir, err := buildHelper()
		if err != nil {
			fmt.Fprintln(os.Stderr, "build helper:", err)
			os.Exit(1)
		}
		helperDir = dir
	}
	code := m.Run()
	if helperDir != "" {
		os.RemoveAll(helperDir)
	}
	os.Exit(code)
}

func buildHelper() (string, error) {
	src, err := os.MkdirTemp("", "sandbox-helper-src-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(src)
	out, err := os.MkdirTemp("", "sandbox-helper-")
	if err != nil {
		return "", err
	}
	if err := os.Chmod(out, 0o755); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(src, "main.go"), []byte(helperSource), 0o644); err != nil {
		return "", err
	}
	goCmd := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(goCmd); err != nil {
		goCmd = "go"
	}
	cmd := exec.Command(goCmd, "build", "-trimpath", "-o", filepath.Join(out, "helper"), "main.go")
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOWORK=off", "GO111MODULE=off", "GOFLAGS=")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("%v: %s", err, b)
	}
	return out, nil
}

// requireRoot skips the test without root, or fails it when CI=true.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("this test needs root (CI=true: failing instead of skipping)")
		}
		t.Skip("needs root")
	}
}

// syncBuffer is an io.Writer safe for concurrent use.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// lines returns the output lines starting with prefix+" ".
func lines(out, prefix string) []string {
	var r []string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, prefix+" ") {
			r = append(r, strings.TrimPrefix(l, prefix+" "))
		}
	}
	return r
}

// line returns the first output line starting with prefix+" ", or fails.
func line(t *testing.T, out, prefix string) string {
	t.Helper()
	l := lines(out, prefix)
	if len(l) == 0 {
		t.Fatalf("no %q line in output:\n%s", prefix, out)
	}
	return l[0]
}
