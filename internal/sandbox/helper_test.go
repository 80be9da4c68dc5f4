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
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
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
			for _, k := range []string{"CapInh:", "CapPrm:", "CapEff:", "CapBnd:", "CapAmb:", "NoNewPrivs:", "Seccomp:", "Seccomp_filters:", "Uid:", "Gid:", "Groups:"} {
				if strings.HasPrefix(l, k) {
					fmt.Println("status", strings.Join(strings.Fields(l), " "))
				}
			}
		}
	case "mount":
		err := syscall.Mount("tmpfs", "/tmp", "tmpfs", 0, "")
		fmt.Printf("mount %v\n", errno(err))
	case "umount":
		err := syscall.Unmount(arg, syscall.MNT_DETACH)
		fmt.Printf("umount %v\n", errno(err))
	case "unshare":
		err := syscall.Unshare(syscall.CLONE_NEWUSER)
		fmt.Printf("unshare %v\n", errno(err))
	case "clonens":
		c := exec.Command("/proc/self/exe", "hello")
		c.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWUSER | syscall.CLONE_NEWNET}
		err := c.Run()
		var se *os.SyscallError
		if errors.As(err, &se) {
			err = se.Err
		}
		fmt.Printf("clonens %v\n", errno(err))
	case "ptrace":
		c := exec.Command("/proc/self/exe", "sleep:1h")
		if err := c.Start(); err != nil {
			fmt.Printf("ptrace start %v\n", err)
			return
		}
		err := syscall.PtraceAttach(c.Process.Pid)
		c.Process.Kill()
		c.Wait()
		fmt.Printf("ptrace %v\n", errno(err))
	case "setuid":
		_, _, e := syscall.RawSyscall(syscall.SYS_SETUID, 0, 0, 0)
		fmt.Printf("setuid %v\n", errno(e))
	case "chroot":
		fmt.Printf("chroot %v\n", errno(syscall.Chroot("/tmp")))
	case "bpf":
		_, _, e := syscall.Syscall(321, 0, 0, 0) // bpf(BPF_MAP_CREATE, NULL, 0) on amd64
		fmt.Printf("bpf %v\n", errno(e))
	case "keyctl":
		_, _, e := syscall.Syscall(250, 0, 0, 0) // keyctl(KEYCTL_GET_KEYRING_ID, 0) on amd64
		fmt.Printf("keyctl %v\n", errno(e))
	case "iouring":
		_, _, e := syscall.Syscall(425, 1, 0, 0) // io_uring_setup on amd64
		fmt.Printf("iouring %v\n", errno(e))
	case "int80":
		// getpid through the i386 entry: pid 1 without the ABI filter.
		r := int80(20, 0, 0, 0)
		fmt.Printf("int80 %d\n", int32(r))
	case "tty":
		f, err := os.OpenFile("/dev/tty", os.O_RDWR, 0)
		if err == nil {
			f.Close()
		}
		fmt.Printf("tty %v\n", errno(err))
	case "sethostname":
		fmt.Printf("sethostname %v\n", errno(syscall.Sethostname([]byte("x"))))
	case "daemon":
		// A child that double-forks a grandchild in a new session, which
		// ignores SIGTERM, then exits.
		c := exec.Command("/proc/self/exe", "daemon2")
		c.Stdout = os.Stdout
		err := c.Run()
		fmt.Printf("daemon %v\n", err)
	case "daemon2":
		c := exec.Command("/proc/self/exe", "ignoreterm", "sleep:1h")
		c.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
		c.Stdout = os.Stdout
		if err := c.Start(); err != nil {
			fmt.Printf("daemon2 %v\n", err)
		}
		os.Exit(0)
	case "ignoreterm":
		signal.Ignore(syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
		fmt.Printf("grandchild %d\n", os.Getpid())
	case "fill":
		// fill:FILE:MB writes MB megabytes to FILE.
		file, mb, _ := strings.Cut(arg, ":")
		n, _ := strconv.Atoi(mb)
		f, err := os.Create(file)
		if err == nil {
			buf := make([]byte, 1<<20)
			for i := range buf {
				buf[i] = byte(i)
			}
			for i := 0; i < n && err == nil; i++ {
				_, err = f.Write(buf)
			}
			f.Close()
		}
		fmt.Printf("fill %s %v\n", file, err)
	case "spin":
		// spin:D burns CPU for D of wall time, then reports the CPU time.
		d, _ := time.ParseDuration(arg)
		end := time.Now().Add(d)
		x := 0
		for time.Now().Before(end) {
			for i := 0; i < 100000; i++ {
				x += i
			}
		}
		var ru syscall.Rusage
		syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
		cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
		fmt.Printf("spin %d %d\n", cpu.Milliseconds(), x%2)
	case "fds":
		// Each open descriptor and what it is (the directory's own is
		// /proc/1/fd).
		d, err := os.Open("/proc/self/fd")
		var names []string
		if err == nil {
			names, err = d.Readdirnames(-1)
			for _, n := range names {
				target, _ := os.Readlink("/proc/self/fd/" + n)
				fmt.Printf("fd %s %s\n", n, target)
			}
			d.Close()
		}
		fmt.Printf("fds %d %v\n", len(names), err)
	case "getenv":
		fmt.Printf("getenv %s=%s\n", arg, os.Getenv(arg))
	case "dialenv":
		run("dial", os.Getenv(arg))
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

// errno names an error by its errno constant, for stable comparisons.
func errno(err error) string {
	var e syscall.Errno
	if err == nil {
		return "ok"
	}
	if !errors.As(err, &e) {
		return err.Error()
	}
	if e == 0 {
		return "ok"
	}
	names := map[syscall.Errno]string{syscall.EPERM: "EPERM", syscall.EINVAL: "EINVAL", syscall.ENOSYS: "ENOSYS",
		syscall.EACCES: "EACCES", syscall.ENXIO: "ENXIO", syscall.EROFS: "EROFS", syscall.ENOENT: "ENOENT", syscall.EFAULT: "EFAULT", syscall.EBADF: "EBADF"}
	if n, ok := names[e]; ok {
		return n
	}
	return e.Error()
}
`

// helperAsm makes the i386 system call entry (int 0x80) reachable from the
// amd64 helper; other architectures get a stub.
var helperAsm = map[string]string{
	"int80_amd64.s": `#include "textflag.h"

// func int80(trap, a1, a2, a3 uintptr) uintptr
TEXT ·int80(SB),NOSPLIT,$0-40
	MOVQ trap+0(FP), AX
	MOVQ a1+8(FP), BX
	MOVQ a2+16(FP), CX
	MOVQ a3+24(FP), DX
	INT $0x80
	MOVQ AX, ret+32(FP)
	RET
`,
	"int80_amd64.go": "package main\n\nfunc int80(trap, a1, a2, a3 uintptr) uintptr\n",
	"int80_other.go": "//go:build !amd64\n\npackage main\n\nfunc int80(trap, a1, a2, a3 uintptr) uintptr { return ^uintptr(37) }\n",
}

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
	for name, body := range helperAsm {
		if err := os.WriteFile(filepath.Join(src, name), []byte(body), 0o644); err != nil {
			return "", err
		}
	}
	goCmd := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(goCmd); err != nil {
		goCmd = "go"
	}
	cmd := exec.Command(goCmd, "build", "-trimpath", "-o", filepath.Join(out, "helper"), ".")
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOWORK=off", "GO111MODULE=off", "GOFLAGS=")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("%v: %s", err, b)
	}
	return out, nil
}

// requireRoot skips the test without root, or fails it when CI=true.
func requireRoot(t testing.TB) {
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
