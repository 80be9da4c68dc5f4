//go:build linux

package sandbox

import (
	"encoding/binary"
	"fmt"
	"runtime"
	"unsafe"

	seccomp "github.com/elastic/go-seccomp-bpf"
	"github.com/elastic/go-seccomp-bpf/arch"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// The seccomp filter of every sandbox, in the spirit of Docker's default
// profile but as a deny list: everything is allowed but the system calls
// below, which fail with EPERM. Most of them would fail anyway for an
// unprivileged user in a user namespace; the filter keeps the kernel code
// behind them out of reach (the attack surface of a shared kernel), and
// stops the few that an unprivileged user may call: new user namespaces
// (unshare, clone with namespace flags), ptrace and reading other
// processes' memory, bpf, userfaultfd, io_uring, perf_event_open, keyrings.
//
// clone3 fails with ENOSYS instead: its flags are in memory, out of a
// filter's reach, and ENOSYS makes C libraries fall back to clone, whose
// flags are checked. A second filter refuses (ENOSYS) every system call
// made through another ABI than the native one: on x86-64 the i386
// entry (int 0x80) would otherwise bypass the first filter, which like
// any filter matches system call numbers of one ABI.
var deniedSyscalls = []string{
	// File systems and mounts.
	"mount", "umount", "umount2", "pivot_root", "chroot",
	"open_tree", "move_mount", "fsopen", "fsconfig", "fsmount", "fspick", "mount_setattr",
	"open_by_handle_at", "quotactl", "quotactl_fd", "swapon", "swapoff",
	"nfsservctl", "sysfs", "ustat", "uselib", "_sysctl", "lookup_dcookie",
	// Namespaces.
	"unshare", "setns",
	// Other processes.
	"ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_getfd", "process_madvise",
	// The kernel itself.
	"kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module",
	"create_module", "get_kernel_syms", "query_module", "reboot", "acct",
	"bpf", "perf_event_open", "userfaultfd", "fanotify_init", "syslog", "vhangup",
	"iopl", "ioperm", "vm86", "vm86old",
	"io_uring_setup", "io_uring_enter", "io_uring_register",
	// Keyrings (not namespaced).
	"keyctl", "add_key", "request_key",
	// Clocks and names of the machine.
	"settimeofday", "stime", "clock_settime", "clock_settime64", "clock_adjtime", "clock_adjtime64",
	"sethostname", "setdomainname",
	// NUMA placement (Docker: CAP_SYS_NICE).
	"mbind", "set_mempolicy", "migrate_pages", "move_pages",
}

// requiredDenied must be known to the filter library on every supported
// architecture: building the filter fails if one is missing, rather than
// leaving it out silently.
var requiredDenied = []string{"mount", "umount2", "unshare", "setns", "ptrace", "bpf", "keyctl", "kexec_load", "init_module", "userfaultfd", "perf_event_open", "io_uring_setup"}

// cloneNamespaceFlags are the clone(2) flags that make new namespaces.
const cloneNamespaceFlags = unix.CLONE_NEWNS | unix.CLONE_NEWCGROUP | unix.CLONE_NEWUTS |
	unix.CLONE_NEWIPC | unix.CLONE_NEWUSER | unix.CLONE_NEWPID | unix.CLONE_NEWNET

// allowedPersonalities are the personality(2) arguments Docker allows
// (Linux, UNAME26, ADDR_NO_RANDOMIZE... and the query 0xffffffff).
var allowedPersonalities = []uint64{0x0, 0x8, 0x20000, 0x20008, 0xffffffff}

// buildSeccomp assembles the sandbox's filters once per Manager; each is a
// raw BPF program (8 bytes per instruction, native byte order) that the
// init loads with seccomp(2).
func buildSeccomp() ([][]byte, error) {
	info, err := arch.GetInfo("")
	if err != nil {
		return nil, fmt.Errorf("%w: seccomp: %v", ErrUnsupported, err)
	}
	var names []string
	for _, n := range deniedSyscalls {
		if _, ok := info.SyscallNames[n]; ok {
			names = append(names, n)
		}
	}
	for _, n := range requiredDenied {
		if _, ok := info.SyscallNames[n]; !ok {
			return nil, fmt.Errorf("%w: seccomp: %s unknown on %s", ErrUnsupported, n, info.Name)
		}
	}
	groups := []seccomp.SyscallGroup{{Names: names, Action: seccomp.ActionErrno}}
	clone := seccomp.NameWithConditions{Name: "clone", Conditions: seccomp.ArgumentConditions{
		{Argument: cloneFlagsArg(info), Operation: seccomp.BitsSet, Value: cloneNamespaceFlags}}}
	var notAllowed seccomp.ArgumentConditions
	for _, p := range allowedPersonalities {
		notAllowed = append(notAllowed, seccomp.Condition{Argument: 0, Operation: seccomp.NotEqual, Value: p})
	}
	personality := seccomp.NameWithConditions{Name: "personality", Conditions: notAllowed}
	groups = append(groups, seccomp.SyscallGroup{
		NamesWithCondtions: []seccomp.NameWithConditions{clone, personality}, Action: seccomp.ActionErrno})
	if _, ok := info.SyscallNames["clone3"]; ok {
		groups = append(groups, seccomp.SyscallGroup{Names: []string{"clone3"}, Action: seccomp.ActionErrno | seccomp.Action(unix.ENOSYS)})
	}
	policy := seccomp.Policy{DefaultAction: seccomp.ActionAllow, Syscalls: groups}
	insts, err := policy.Assemble()
	if err != nil {
		return nil, fmt.Errorf("sandbox: seccomp policy: %w", err)
	}
	main, err := rawProgram(insts)
	if err != nil {
		return nil, err
	}
	// Only the native ABI.
	abi, err := rawProgram([]bpf.Instruction{
		bpf.LoadAbsolute{Off: 4, Size: 4}, // seccomp_data.arch
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: uint32(info.ID), SkipFalse: 1},
		bpf.RetConstant{Val: uint32(seccomp.ActionAllow)},
		bpf.RetConstant{Val: uint32(seccomp.ActionErrno) | uint32(unix.ENOSYS)},
	})
	if err != nil {
		return nil, err
	}
	return [][]byte{abi, main}, nil
}

// cloneFlagsArg is the index of clone's flags argument (s390 swaps the
// first two).
func cloneFlagsArg(info *arch.Info) uint32 {
	if info.Name == "s390x" || info.Name == "s390" {
		return 1
	}
	return 0
}

func rawProgram(insts []bpf.Instruction) ([]byte, error) {
	raw, err := bpf.Assemble(insts)
	if err != nil {
		return nil, fmt.Errorf("sandbox: seccomp: %w", err)
	}
	out := make([]byte, 0, 8*len(raw))
	for _, r := range raw {
		out = binary.NativeEndian.AppendUint16(out, r.Op)
		out = append(out, r.Jt, r.Jf)
		out = binary.NativeEndian.AppendUint32(out, r.K)
	}
	return out, nil
}

// loadSeccomp installs the filters on the calling thread (which execs next;
// the filters are inherited across exec and fork). no_new_privs must be
// set already.
func loadSeccomp(progs [][]byte) error {
	for _, p := range progs {
		if len(p) == 0 || len(p)%8 != 0 {
			return fmt.Errorf("seccomp: bad program length %d", len(p))
		}
		filter := make([]unix.SockFilter, len(p)/8)
		for i := range filter {
			b := p[8*i:]
			filter[i] = unix.SockFilter{Code: binary.NativeEndian.Uint16(b), Jt: b[2], Jf: b[3], K: binary.NativeEndian.Uint32(b[4:])}
		}
		prog := unix.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]}
		_, _, e := unix.RawSyscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, 0, uintptr(unsafe.Pointer(&prog)))
		runtime.KeepAlive(filter)
		if e != 0 {
			return fmt.Errorf("seccomp: %w", e)
		}
	}
	return nil
}
