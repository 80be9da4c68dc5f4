// Command hostile is a test function built with aws-lambda-go that tries
// to break out of its sandbox. The event's "mode" picks the attack; each
// reports what it saw, and the isolation tests assert on it. Failing to
// break out is the expected outcome: no mode returns an error for that.
package main

import (
	"context"
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

	"github.com/aws/aws-lambda-go/lambda"
)

type event struct {
	Mode string   `json:"mode"`
	N    int      `json:"n"`
	Name string   `json:"name"`
	Body string   `json:"body"`
	Dial []string `json:"dial"`
}

func handle(ctx context.Context, ev event) (any, error) {
	switch ev.Mode {
	case "probe":
		return probe(ev), nil
	case "write":
		err := os.WriteFile("/tmp/"+ev.Name, []byte(ev.Body), 0o644)
		return map[string]any{"written": errText(err)}, nil
	case "alloc":
		var keep [][]byte
		for i := 0; i < ev.N; i++ {
			b := make([]byte, 1<<20)
			for j := 0; j < len(b); j += 4096 {
				b[j] = 1
			}
			keep = append(keep, b)
		}
		return map[string]any{"allocated_mb": len(keep)}, nil
	case "forkbomb":
		return forkBomb(ev.N), nil
	case "fill":
		return fill(), nil
	case "daemon":
		// Double fork: a child starts a grandchild in a session of its
		// own, which ignores SIGTERM, and exits.
		c := exec.Command("/proc/self/exe")
		c.Env = append(os.Environ(), "HOSTILE_DAEMON=1")
		out, err := c.Output()
		return map[string]any{"daemon": errText(err), "pid": strings.TrimSpace(string(out))}, nil
	}
	return nil, fmt.Errorf("unknown mode %q", ev.Mode)
}

// probe looks around and tries what a hostile tenant would.
func probe(ev event) map[string]any {
	r := map[string]any{}
	r["uid"], r["gid"], r["euid"] = os.Getuid(), os.Getgid(), os.Geteuid()
	groups, _ := os.Getgroups()
	r["groups"] = groups
	r["pid"] = os.Getpid()
	r["hostname"], _ = os.Hostname()
	status := map[string]string{}
	if b, err := os.ReadFile("/proc/self/status"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			k, v, ok := strings.Cut(l, ":")
			if ok && (strings.HasPrefix(k, "Cap") || k == "NoNewPrivs" || strings.HasPrefix(k, "Seccomp") || k == "Uid" || k == "Gid") {
				status[k] = strings.Join(strings.Fields(v), " ")
			}
		}
	}
	r["status"] = status
	r["processes"] = processes()
	r["root"] = list("/")
	r["tmp"] = list("/tmp")
	r["task"] = list("/var/task")
	writes := map[string]string{}
	for _, p := range []string{"/var/task/x", "/x", "/usr/x", "/etc/x", "/tmp/x", "/proc/sys/kernel/hostname"} {
		writes[p] = errText(os.WriteFile(p, []byte("x"), 0o644))
	}
	r["writes"] = writes
	var st syscall.Statfs_t
	if err := syscall.Statfs("/tmp", &st); err == nil {
		r["tmp_bytes"] = int64(st.Blocks) * st.Bsize
	}
	env := map[string]string{}
	for _, kv := range os.Environ() {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	r["env"] = env
	dials := map[string]string{}
	for _, a := range ev.Dial {
		c, err := net.DialTimeout("tcp", a, 2*time.Second)
		if err == nil {
			c.Close()
		}
		dials[a] = errText(err)
	}
	r["dial"] = dials
	r["interfaces"] = interfaces()
	sys := map[string]string{}
	sys["mount"] = errText(syscall.Mount("tmpfs", "/tmp", "tmpfs", 0, ""))
	sys["umount"] = errText(syscall.Unmount("/var/task", syscall.MNT_DETACH))
	sys["unshare_user"] = errText(syscall.Unshare(syscall.CLONE_NEWUSER))
	sys["unshare_net"] = errText(syscall.Unshare(syscall.CLONE_NEWNET))
	sys["chroot"] = errText(syscall.Chroot("/tmp"))
	sys["setuid0"] = errText(rawErr(syscall.RawSyscall(syscall.SYS_SETUID, 0, 0, 0)))
	sys["ptrace"] = ptraceChild()
	sys["clone_newuser"] = cloneNewUser()
	sys["i386_getpid"] = strconv.Itoa(int(int32(int80(20, 0, 0, 0))))
	sys["tty"] = errText(openTTY())
	sys["kill_host_init"] = errText(syscall.Kill(-1, 0))
	r["syscalls"] = sys
	return r
}

func processes() []string {
	es, _ := os.ReadDir("/proc")
	var out []string
	for _, e := range es {
		if _, err := strconv.Atoi(e.Name()); err == nil {
			out = append(out, e.Name())
		}
	}
	return out
}

func list(dir string) []string {
	es, err := os.ReadDir(dir)
	if err != nil {
		return []string{"error: " + err.Error()}
	}
	var out []string
	for _, e := range es {
		out = append(out, e.Name())
	}
	sort.Strings(out)
	return out
}

func interfaces() []string {
	ifs, _ := net.Interfaces()
	var out []string
	for _, i := range ifs {
		out = append(out, i.Name)
	}
	return out
}

func ptraceChild() string {
	c := exec.Command("/bin/sleep", "60")
	if err := c.Start(); err != nil {
		return "start: " + err.Error()
	}
	defer func() {
		c.Process.Kill()
		c.Wait()
	}()
	return errText(syscall.PtraceAttach(c.Process.Pid))
}

func cloneNewUser() string {
	c := exec.Command("/bin/true")
	c.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWUSER}
	err := c.Run()
	var se *os.SyscallError
	if errors.As(err, &se) {
		err = se.Err
	}
	return errText(err)
}

func openTTY() error {
	f, err := os.OpenFile("/dev/tty", os.O_RDWR, 0)
	if err == nil {
		f.Close()
	}
	return err
}

// forkBomb starts /bin/sleep until the kernel refuses (at most n), then
// kills them all.
func forkBomb(n int) map[string]any {
	var cmds []*exec.Cmd
	var err error
	for len(cmds) < n {
		c := exec.Command("/bin/sleep", "600")
		if err = c.Start(); err != nil {
			break
		}
		cmds = append(cmds, c)
	}
	for _, c := range cmds {
		c.Process.Kill()
	}
	for _, c := range cmds {
		c.Wait()
	}
	return map[string]any{"started": len(cmds), "error": errText(err)}
}

// fill writes to /tmp until it is full.
func fill() map[string]any {
	f, err := os.Create("/tmp/fill")
	if err != nil {
		return map[string]any{"error": errText(err)}
	}
	buf := make([]byte, 1<<20)
	var n int64
	for {
		w, err := f.Write(buf)
		n += int64(w)
		if err != nil {
			f.Close()
			os.Remove("/tmp/fill")
			return map[string]any{"written": n, "error": errText(err)}
		}
	}
}

func rawErr(_, _ uintptr, e syscall.Errno) error {
	if e != 0 {
		return e
	}
	return nil
}

// errText is "ok" or the error's text, with the errno's name when there
// is one (stable across libc-free Go versions).
func errText(err error) string {
	if err == nil {
		return "ok"
	}
	var e syscall.Errno
	if errors.As(err, &e) {
		switch e {
		case syscall.EPERM:
			return "EPERM"
		case syscall.EACCES:
			return "EACCES"
		case syscall.EROFS:
			return "EROFS"
		case syscall.ENOSPC:
			return "ENOSPC"
		case syscall.EAGAIN:
			return "EAGAIN"
		case syscall.ECONNREFUSED:
			return "ECONNREFUSED"
		case syscall.ENETUNREACH:
			return "ENETUNREACH"
		case syscall.ENXIO:
			return "ENXIO"
		case syscall.EINVAL:
			return "EINVAL"
		case syscall.ESRCH:
			return "ESRCH"
		}
	}
	return err.Error()
}

func main() {
	switch os.Getenv("HOSTILE_DAEMON") {
	case "1":
		c := exec.Command("/proc/self/exe")
		c.Env = append(os.Environ(), "HOSTILE_DAEMON=2")
		c.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
		if err := c.Start(); err != nil {
			os.Exit(1)
		}
		fmt.Println(c.Process.Pid)
		os.Exit(0)
	case "2":
		signal.Ignore(syscall.SIGTERM, syscall.SIGHUP, syscall.SIGINT)
		time.Sleep(time.Hour)
		return
	}
	lambda.Start(handle)
}
