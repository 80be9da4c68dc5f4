//go:build linux

package sandbox

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path"
	"runtime"
	"strings"

	"golang.org/x/sys/unix"
)

// File descriptors of the init re-exec (Cmd.ExtraFiles order).
const (
	fdSync   = 3 // read: the childConfig (encode), later one goByte
	fdErr    = 4 // write: a setup error; closed by exec on success
	fdParent = 5 // a pidfd of the parent process
	fdMounts = 6 // and up: one detached mount tree per Spec.Mount
)

// goByte is what the parent writes to the sync pipe, after the config,
// once the init is in its cgroups and its listener is open: until then
// the init sets up its root but does not drop privileges nor exec.
const goByte = 'G'

// goInitArg0 is recognised by the Go init only, never by the C one
// (init_linux.c): the tests use it to exercise the fallback init that a
// build without cgo has.
const goInitArg0 = InitArg0 + "-go"

// childConfig is what the parent sends the init over the sync pipe right
// after starting it. It is the whole plan of the init: both the C init
// (init_linux.c, used when cgo is on) and the Go one below execute it, and
// the policy (which host directories, devices and /proc paths) comes from
// this package's lists, so the two cannot drift apart on it.
type childConfig struct {
	Hostname string
	Path     string
	Argv     []string // argv[0] included
	Env      []string
	Dir      string
	// Targets are the Spec.Mounts' targets; the i-th tree is fd fdMounts+i.
	Targets []string
	// TmpOpts are the tmpfs options of /tmp ("size=512m,mode=1777").
	TmpOpts  string
	UID, GID uint32
	// SystemDirs, Devices, ProcMasked and ProcReadOnly are systemDirs,
	// devices, procMasked and procReadOnly.
	SystemDirs, Devices, ProcMasked, ProcReadOnly []string
	// Seccomp are the raw BPF programs to load last (buildSeccomp).
	Seccomp [][]byte
}

// encode serialises c for the init: a native-endian uint32 with the length
// of the rest, then the fields in the order of the struct. A string is a
// uint32 length, its bytes and a NUL (so that the C init can use it in
// place); a list is a uint32 count and its strings; the ids are uint32s.
func (c *childConfig) encode() []byte {
	b := make([]byte, 4, 4096)
	str := func(s string) {
		b = binary.NativeEndian.AppendUint32(b, uint32(len(s)))
		b = append(b, s...)
		b = append(b, 0)
	}
	list := func(l []string) {
		b = binary.NativeEndian.AppendUint32(b, uint32(len(l)))
		for _, s := range l {
			str(s)
		}
	}
	str(c.Hostname)
	str(c.Path)
	list(c.Argv)
	list(c.Env)
	str(c.Dir)
	list(c.Targets)
	str(c.TmpOpts)
	b = binary.NativeEndian.AppendUint32(b, c.UID)
	b = binary.NativeEndian.AppendUint32(b, c.GID)
	list(c.SystemDirs)
	list(c.Devices)
	list(c.ProcMasked)
	list(c.ProcReadOnly)
	b = binary.NativeEndian.AppendUint32(b, uint32(len(c.Seccomp)))
	for _, p := range c.Seccomp {
		str(string(p))
	}
	binary.NativeEndian.PutUint32(b, uint32(len(b)-4))
	return b
}

// maxConfig bounds the config the inits accept (the environment and
// arguments are a few kB at most).
const maxConfig = 16 << 20

// decodeChildConfig parses the body of encode's output (without its
// length prefix).
func decodeChildConfig(b []byte) (*childConfig, error) {
	bad := errors.New("malformed config")
	u32 := func() uint32 {
		if len(b) < 4 {
			b = nil
			return 0
		}
		v := binary.NativeEndian.Uint32(b)
		b = b[4:]
		return v
	}
	ok := true
	str := func() string {
		n := u32()
		if !ok || uint64(len(b)) < uint64(n)+1 || b[n] != 0 {
			ok = false
			return ""
		}
		s := string(b[:n])
		b = b[n+1:]
		return s
	}
	list := func() []string {
		n := u32()
		if uint64(n) > uint64(len(b)) {
			ok = false
			return nil
		}
		l := make([]string, 0, n)
		for range n {
			l = append(l, str())
		}
		return l
	}
	var c childConfig
	c.Hostname = str()
	c.Path = str()
	c.Argv = list()
	c.Env = list()
	c.Dir = str()
	c.Targets = list()
	c.TmpOpts = str()
	if len(b) < 8 {
		return nil, bad
	}
	c.UID, c.GID = u32(), u32()
	c.SystemDirs = list()
	c.Devices = list()
	c.ProcMasked = list()
	c.ProcReadOnly = list()
	for _, p := range list() {
		c.Seccomp = append(c.Seccomp, []byte(p))
	}
	if !ok || len(b) != 0 {
		return nil, bad
	}
	return &c, nil
}

// newRootAt is where the init mounts the tmpfs that becomes the sandbox's
// root, in its private mount namespace. Anything it hides is reached
// through file descriptors opened before.
const newRootAt = "/tmp"

// systemDirs are the host directories bound read-only into every sandbox
// (those that exist; symlinks are recreated as symlinks).
var systemDirs = []string{"usr", "lib", "lib32", "lib64", "bin", "sbin", "etc"}

// devices are the host device nodes bound into the sandbox's /dev.
var devices = []string{"null", "zero", "full", "random", "urandom", "tty"}

// The Go init: the fallback of the C one (init_linux.c) in builds without
// cgo (with cgo the C inits are forked from the spawner, and this runs
// only for goInitArg0, in the tests). Both take the same steps; the C
// init's root comes from the spawner's template when it can (see
// init_linux.c).
func init() {
	if len(os.Args) == 0 || os.Args[0] != InitArg0 && os.Args[0] != goInitArg0 {
		return
	}
	// Namespace (cgroup), no_new_privs and credential changes below apply
	// to this thread, which is the one that execs.
	runtime.LockOSThread()
	err := runInit()
	unix.Write(fdErr, []byte(err.Error()))
	unix.Exit(1)
}

// runInit sets the sandbox up and execs the program; it returns only on
// failure.
func runInit() error {
	for _, fd := range []int{fdSync, fdErr, fdParent} {
		unix.CloseOnExec(fd)
	}
	// The mount trees' fds come after; the config says how many.
	if err := unix.SetNonblock(fdSync, false); err != nil {
		return fmt.Errorf("sync pipe: %w", err)
	}
	var n [4]byte
	err := readFull(fdSync, n[:])
	var c *childConfig
	if size := binary.NativeEndian.Uint32(n[:]); err == nil && size > maxConfig {
		err = fmt.Errorf("config of %d bytes", size)
	} else if err == nil {
		b := make([]byte, size)
		if err = readFull(fdSync, b); err == nil {
			c, err = decodeChildConfig(b)
		}
	}
	if err != nil {
		unix.Close(fdSync)
		return fmt.Errorf("read config: %w", err)
	}
	for i := range c.Targets {
		unix.CloseOnExec(fdMounts + i)
	}
	// Any other descriptor (one this process inherited without
	// close-on-exec, such as those a parent of Ember passed it) must
	// not reach the program.
	// (Before Linux 5.11 there is no CLOSE_RANGE_CLOEXEC; the package
	// needs 5.12 for mount_setattr anyway.)
	const closeRangeCloexec = 4 // CLOSE_RANGE_CLOEXEC
	if err := unix.CloseRange(uint(fdMounts+len(c.Targets)), math.MaxUint32, closeRangeCloexec); err != nil && err != unix.ENOSYS && err != unix.EINVAL {
		return fmt.Errorf("close-on-exec: %w", err)
	}
	// The parent attaches this process to its cgroups and opens its
	// listener meanwhile.
	if err := setupRoot(c); err != nil {
		return err
	}
	if err := unix.Sethostname([]byte(c.Hostname)); err != nil {
		return fmt.Errorf("sethostname: %w", err)
	}
	if err := loopbackUp(); err != nil {
		return err
	}
	var g [1]byte
	err = readFull(fdSync, g[:])
	unix.Close(fdSync)
	if err != nil || g[0] != goByte {
		return fmt.Errorf("wait for the parent: %v", err)
	}
	// Now in the sandbox's cgroups: make them the cgroup namespace's root.
	if err := unix.Unshare(unix.CLONE_NEWCGROUP); err != nil {
		return fmt.Errorf("unshare cgroup ns: %w", err)
	}
	if err := dropPrivileges(int(c.UID), int(c.GID)); err != nil {
		return err
	}
	if err := unix.Chdir(c.Dir); err != nil {
		return fmt.Errorf("chdir %s: %w", c.Dir, err)
	}
	// Last: from here on only the exec itself may run.
	if err := loadSeccomp(c.Seccomp); err != nil {
		return err
	}
	env := c.Env
	if env == nil {
		env = []string{}
	}
	return fmt.Errorf("exec %s: %w", c.Path, unix.Exec(c.Path, c.Argv, env))
}

// readFull fills b from fd.
func readFull(fd int, b []byte) error {
	for len(b) > 0 {
		n, err := unix.Read(fd, b)
		switch {
		case err == unix.EINTR:
			continue
		case err != nil:
			return err
		case n == 0:
			return io.ErrUnexpectedEOF
		}
		b = b[n:]
	}
	return nil
}

// Securebits (linux/securebits.h): uid 0 gets no capabilities from exec
// or setuid, and no process of the sandbox can change that.
const (
	secbitNoroot                  = 1 << 0
	secbitNorootLocked            = 1 << 1
	secbitNoSetuidFixupLocked     = 1 << 3
	secbitKeepCapsLocked          = 1 << 5
	secbitNoCapAmbientRaise       = 1 << 6
	secbitNoCapAmbientRaiseLocked = 1 << 7
	lockedSecurebits              = secbitNoroot | secbitNorootLocked | secbitNoSetuidFixupLocked |
		secbitKeepCapsLocked | secbitNoCapAmbientRaise | secbitNoCapAmbientRaiseLocked
)

// dropPrivileges drops every capability and switches this thread to
// uid/gid with no supplementary groups: the ambient set is cleared, every
// capability is dropped from the bounding set and the securebits locked
// (both need CAP_SETPCAP, so first), no_new_privs is set, the ids change
// (which empties the permitted and effective sets), and the inheritable
// set is emptied too, then checked. The raw per-thread syscalls are
// enough: this thread execs, and exec ends the others. The parent-death
// signal, which the kernel clears on a change of credentials, is armed
// again, and the parent checked to be alive after.
func dropPrivileges(uid, gid int) error {
	if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0); err != nil {
		return fmt.Errorf("clear ambient capabilities: %w", err)
	}
	for c := 0; ; c++ {
		err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0)
		if err == unix.EINVAL {
			if c == 0 {
				return errors.New("drop bounding set: no capabilities known")
			}
			break
		}
		if err != nil {
			return fmt.Errorf("drop capability %d from the bounding set: %w", c, err)
		}
	}
	if err := unix.Prctl(unix.PR_SET_SECUREBITS, lockedSecurebits, 0, 0, 0); err != nil {
		return fmt.Errorf("securebits: %w", err)
	}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("no_new_privs: %w", err)
	}
	if _, _, e := unix.RawSyscall(unix.SYS_SETGROUPS, 0, 0, 0); e != 0 {
		return fmt.Errorf("setgroups: %w", e)
	}
	if _, _, e := unix.RawSyscall(unix.SYS_SETRESGID, uintptr(gid), uintptr(gid), uintptr(gid)); e != 0 {
		return fmt.Errorf("setresgid %d: %w", gid, e)
	}
	if _, _, e := unix.RawSyscall(unix.SYS_SETRESUID, uintptr(uid), uintptr(uid), uintptr(uid)); e != 0 {
		return fmt.Errorf("setresuid %d: %w", uid, e)
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var caps [2]unix.CapUserData
	if err := unix.Capset(&hdr, &caps[0]); err != nil {
		return fmt.Errorf("capset: %w", err)
	}
	if err := unix.Capget(&hdr, &caps[0]); err != nil {
		return fmt.Errorf("capget: %w", err)
	}
	if caps != [2]unix.CapUserData{} {
		return fmt.Errorf("capabilities left after the drop: %+v", caps)
	}
	if err := unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(unix.SIGKILL), 0, 0, 0); err != nil {
		return fmt.Errorf("pdeathsig: %w", err)
	}
	fds := []unix.PollFd{{Fd: fdParent, Events: unix.POLLIN}}
	if n, err := unix.Poll(fds, 0); err == nil && n > 0 {
		return errors.New("parent exited")
	}
	return nil
}

// setupRoot builds the sandbox's file system view and pivots into it.
func setupRoot(c *childConfig) error {
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make / private: %w", err)
	}
	root := newRootAt
	if err := unix.Mount("tmpfs", root, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "size=1m,nr_inodes=1024,mode=755"); err != nil {
		return fmt.Errorf("mount root tmpfs: %w", err)
	}
	const noSuidDev = unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV
	for _, d := range c.SystemDirs {
		fi, err := os.Lstat("/" + d)
		if err != nil {
			continue
		}
		dst := root + "/" + d
		switch {
		case fi.Mode()&os.ModeSymlink != 0:
			target, err := os.Readlink("/" + d)
			if err == nil {
				err = os.Symlink(target, dst)
			}
			if err != nil {
				return fmt.Errorf("symlink /%s: %w", d, err)
			}
		case fi.IsDir():
			if err := os.Mkdir(dst, 0o755); err != nil {
				return fmt.Errorf("mkdir /%s: %w", d, err)
			}
			if err := bind("/"+d, dst, true, noSuidDev); err != nil {
				return err
			}
		}
	}
	// The Mounts arrive as detached trees that the parent cloned, with
	// their attributes set: the sources' host paths may not be reachable
	// by this process's ids.
	for i, target := range c.Targets {
		fd := fdMounts + i
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			return fmt.Errorf("mount %s: %w", target, err)
		}
		dst, err := mkMountpoint(root, target, st.Mode&unix.S_IFMT == unix.S_IFDIR)
		if err != nil {
			return fmt.Errorf("mount target %s: %w", target, err)
		}
		if err := unix.MoveMount(fd, "", unix.AT_FDCWD, dst, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
			return fmt.Errorf("mount %s: %w", target, err)
		}
		unix.Close(fd)
	}
	if err := os.Mkdir(root+"/tmp", 0o1777); err != nil {
		return fmt.Errorf("mkdir /tmp: %w", err)
	}
	if err := unix.Mount("tmpfs", root+"/tmp", "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, c.TmpOpts); err != nil {
		return fmt.Errorf("mount /tmp: %w", err)
	}
	if err := os.Mkdir(root+"/proc", 0o555); err != nil {
		return fmt.Errorf("mkdir /proc: %w", err)
	}
	if err := unix.Mount("proc", root+"/proc", "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return fmt.Errorf("mount /proc: %w", err)
	}
	if err := maskProc(root+"/proc", c.ProcMasked, c.ProcReadOnly); err != nil {
		return err
	}
	if err := setupDev(root+"/dev", c.Devices); err != nil {
		return err
	}
	if err := unix.Chdir(root); err != nil {
		return fmt.Errorf("chdir new root: %w", err)
	}
	// pivot_root(".", ".") stacks the old root on the new one; detaching
	// "." then drops the old root (see pivot_root(2)).
	if err := unix.PivotRoot(".", "."); err != nil {
		return fmt.Errorf("pivot_root: %w", err)
	}
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return fmt.Errorf("detach old root: %w", err)
	}
	if err := unix.Chdir("/"); err != nil {
		return fmt.Errorf("chdir /: %w", err)
	}
	if err := unix.Mount("", "/", "", unix.MS_REMOUNT|unix.MS_BIND|unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV, ""); err != nil {
		return fmt.Errorf("remount / read-only: %w", err)
	}
	return nil
}

// Docker's masked and read-only /proc paths: kernel memory and state,
// others' keys and timers hidden; the kernel's knobs read-only.
var (
	procMasked   = []string{"asound", "acpi", "kcore", "keys", "latency_stats", "timer_list", "timer_stats", "sched_debug", "scsi"}
	procReadOnly = []string{"bus", "fs", "irq", "sys", "sysrq-trigger"}
)

// maskProc hides procMasked (files under /dev/null, directories under an
// empty read-only tmpfs) and makes procReadOnly read-only.
func maskProc(proc string, masked, readOnly []string) error {
	for _, n := range masked {
		p := proc + "/" + n
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			continue
		}
		var err error
		if st.Mode&unix.S_IFMT == unix.S_IFDIR {
			err = unix.Mount("tmpfs", p, "tmpfs", unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "size=0,nr_inodes=1")
		} else {
			err = unix.Mount("/dev/null", p, "", unix.MS_BIND, "")
		}
		if err != nil {
			return fmt.Errorf("mask /proc/%s: %w", n, err)
		}
	}
	for _, n := range readOnly {
		p := proc + "/" + n
		if err := unix.Access(p, unix.F_OK); err != nil {
			continue
		}
		if err := bind(p, p, true, unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NODEV|unix.MOUNT_ATTR_NOEXEC); err != nil {
			return fmt.Errorf("/proc/%s read-only: %w", n, err)
		}
	}
	return nil
}

// setupDev makes the sandbox's /dev: a read-only tmpfs with host device
// nodes bound in, the usual symlinks, and a small writable /dev/shm.
func setupDev(dev string, devices []string) error {
	if err := os.Mkdir(dev, 0o755); err != nil {
		return fmt.Errorf("mkdir /dev: %w", err)
	}
	if err := unix.Mount("tmpfs", dev, "tmpfs", unix.MS_NOSUID|unix.MS_NOEXEC, "size=64k,mode=755"); err != nil {
		return fmt.Errorf("mount /dev: %w", err)
	}
	for _, n := range devices {
		if _, err := os.Stat("/dev/" + n); err != nil {
			continue
		}
		f, err := os.OpenFile(dev+"/"+n, os.O_CREATE|os.O_WRONLY, 0o666)
		if err != nil {
			return fmt.Errorf("create /dev/%s: %w", n, err)
		}
		f.Close()
		if err := unix.Mount("/dev/"+n, dev+"/"+n, "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("bind /dev/%s: %w", n, err)
		}
	}
	links := [][2]string{{"/proc/self/fd", "fd"}, {"/proc/self/fd/0", "stdin"}, {"/proc/self/fd/1", "stdout"}, {"/proc/self/fd/2", "stderr"}}
	for _, l := range links {
		if err := os.Symlink(l[0], dev+"/"+l[1]); err != nil {
			return fmt.Errorf("symlink /dev/%s: %w", l[1], err)
		}
	}
	if err := os.Mkdir(dev+"/shm", 0o1777); err != nil {
		return fmt.Errorf("mkdir /dev/shm: %w", err)
	}
	if err := unix.Mount("tmpfs", dev+"/shm", "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "size=64m,mode=1777"); err != nil {
		return fmt.Errorf("mount /dev/shm: %w", err)
	}
	if err := unix.Mount("", dev, "", unix.MS_REMOUNT|unix.MS_BIND|unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NOEXEC, ""); err != nil {
		return fmt.Errorf("remount /dev read-only: %w", err)
	}
	return nil
}

// bind bind-mounts src (with its submounts) on dst and sets attrs on every
// mount of the new tree, plus read-only if asked. A read-only bind needs
// this second step: the bind itself ignores MS_RDONLY.
func bind(src, dst string, readOnly bool, attrs uint64) error {
	if err := unix.Mount(src, dst, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("bind %s: %w", dst, err)
	}
	if readOnly {
		attrs |= unix.MOUNT_ATTR_RDONLY
	}
	err := unix.MountSetattr(unix.AT_FDCWD, dst, unix.AT_RECURSIVE, &unix.MountAttr{Attr_set: attrs})
	if err == unix.ENOSYS { // before Linux 5.12: the top mount only
		flags := uintptr(unix.MS_BIND | unix.MS_REMOUNT)
		if attrs&unix.MOUNT_ATTR_RDONLY != 0 {
			flags |= unix.MS_RDONLY
		}
		if attrs&unix.MOUNT_ATTR_NOSUID != 0 {
			flags |= unix.MS_NOSUID
		}
		if attrs&unix.MOUNT_ATTR_NODEV != 0 {
			flags |= unix.MS_NODEV
		}
		if attrs&unix.MOUNT_ATTR_NOEXEC != 0 {
			flags |= unix.MS_NOEXEC
		}
		err = unix.Mount("", dst, "", flags, "")
	}
	if err != nil {
		return fmt.Errorf("set attributes of %s: %w", dst, err)
	}
	return nil
}

// mkMountpoint creates target (a directory, or an empty file when !dir)
// and its parents under root, refusing to follow any symlink: before the
// pivot an absolute symlink (from an earlier Mount's content) would lead
// out to the host.
func mkMountpoint(root, target string, dir bool) (string, error) {
	cur := root
	parts := strings.Split(strings.TrimPrefix(path.Clean(target), "/"), "/")
	for i, p := range parts {
		cur += "/" + p
		last := i == len(parts)-1
		fi, err := os.Lstat(cur)
		switch {
		case err == nil && fi.Mode()&os.ModeSymlink != 0:
			return "", fmt.Errorf("%s is a symlink", cur[len(root):])
		case err == nil && (!last || dir) && !fi.IsDir():
			return "", fmt.Errorf("%s is not a directory", cur[len(root):])
		case err == nil:
			continue
		case !os.IsNotExist(err):
			return "", err
		case !last || dir:
			err = os.Mkdir(cur, 0o755)
		default:
			var f *os.File
			if f, err = os.OpenFile(cur, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644); err == nil {
				err = f.Close()
			}
		}
		if err != nil {
			return "", err
		}
	}
	return cur, nil
}
