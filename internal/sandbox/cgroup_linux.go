//go:build linux

package sandbox

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// limits are the resource limits of one sandbox's cgroup.
type limits struct {
	memoryBytes int64
	pidsMax     int
	cpuWeight   int
	cpuMilli    int // CPU time cap in thousandths of a CPU; 0: none
}

// cpuPeriodUs is the CFS period of the CPU cap (cpu.cfs_period_us, the
// second number of cpu.max).
const cpuPeriodUs = 100000

// cgroupDriver creates sandbox groups under the parent group(s) it made.
type cgroupDriver interface {
	version() int
	// create makes the group of sandbox id and sets its limits.
	create(id string, lim limits) (cgroup, error)
	// removeParent removes the parent group(s) (and undoes what the driver
	// did to this process's own group).
	removeParent(ctx context.Context) error
}

// cgroup is one sandbox's group (one directory per hierarchy).
type cgroup interface {
	// cloneFD returns a directory fd for CLONE_INTO_CGROUP, or -1 when the
	// process must be attached after it started. The cgroup owns the fd.
	cloneFD() int
	// closeCloneFD closes the fd returned by cloneFD, if any.
	closeCloneFD()
	// attach moves process pid (all its threads) into the group.
	attach(pid int) error
	// kill sends SIGKILL to every process in the group.
	kill() error
	// empty reports whether the group has no processes left.
	empty() (bool, error)
	// stats reads whether the group saw an OOM kill and its peak memory.
	stats() (oomKilled bool, peak int64)
	// dirs lists the group's directories (one per hierarchy).
	dirs() []string
	// setLimits sets the group's limits (create sets them unless they are
	// zero: a group of the init pool, limited when it is taken).
	setLimits(lim limits) error
	// setCPUMilli sets the CPU cap (0: none).
	setCPUMilli(milli int) error
}

// v1Controllers are the cgroup v1 controllers a sandbox is limited by.
var v1Controllers = []string{"memory", "pids", "cpu"}

// newDriver detects the cgroup version, removes the groups dead processes
// left next to the parent group(s) (cleanStale) and makes the parent
// group(s).
func newDriver(parent string, log *slog.Logger) (cgroupDriver, error) {
	var st unix.Statfs_t
	if err := unix.Statfs("/sys/fs/cgroup", &st); err != nil {
		return nil, fmt.Errorf("%w: statfs /sys/fs/cgroup: %v", ErrUnsupported, err)
	}
	own, err := readProcCgroup("/proc/self/cgroup")
	if err != nil {
		return nil, err
	}
	mounts, err := readCgroupMounts("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	if st.Type == unix.CGROUP2_SUPER_MAGIC {
		dir, err := hierarchyDir(mounts, own, "")
		if err != nil {
			return nil, err
		}
		cleanStale([]string{dir}, log)
		return newV2Driver(dir, parent, v2Controllers)
	}
	d := &v1Driver{parents: map[string]string{}}
	var dirs []string
	for _, c := range v1Controllers {
		dir, err := hierarchyDir(mounts, own, c)
		if err != nil {
			return nil, err
		}
		d.parents[c] = filepath.Join(dir, parent)
		if !contains(dirs, dir) {
			dirs = append(dirs, dir)
		}
	}
	cleanStale(dirs, log)
	for _, c := range v1Controllers {
		if err := os.Mkdir(d.parents[c], 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			d.removeParent(context.Background())
			return nil, fmt.Errorf("sandbox: create cgroup: %w", err)
		}
	}
	return d, nil
}

// cgroupMount is one mounted cgroup hierarchy from /proc/self/mountinfo.
type cgroupMount struct {
	root, point string
	v2          bool
	controllers []string // v1 only
}

// readProcCgroup maps each v1 controller (and "" for v2) to the path of
// this process's group, from a /proc/<pid>/cgroup file.
func readProcCgroup(file string) (map[string]string, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("sandbox: %w", err)
	}
	return parseProcCgroup(b), nil
}

func parseProcCgroup(b []byte) map[string]string {
	m := map[string]string{}
	for line := range strings.Lines(string(b)) {
		parts := strings.SplitN(strings.TrimSuffix(line, "\n"), ":", 3)
		if len(parts) != 3 {
			continue
		}
		if parts[0] == "0" && parts[1] == "" {
			m[""] = parts[2]
			continue
		}
		for _, c := range strings.Split(parts[1], ",") {
			m[c] = parts[2]
		}
	}
	return m
}

func readCgroupMounts(file string) ([]cgroupMount, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("sandbox: %w", err)
	}
	return parseCgroupMounts(b), nil
}

// parseCgroupMounts extracts the cgroup mounts from a mountinfo file.
func parseCgroupMounts(b []byte) []cgroupMount {
	var out []cgroupMount
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for sc.Scan() {
		// id parent maj:min root point options [optional...] - fstype source superopts
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		if !ok {
			continue
		}
		f, g := strings.Fields(pre), strings.Fields(post)
		if len(f) < 5 || len(g) < 3 {
			continue
		}
		m := cgroupMount{root: unescapeMountinfo(f[3]), point: unescapeMountinfo(f[4])}
		switch g[0] {
		case "cgroup2":
			m.v2 = true
		case "cgroup":
			for _, o := range strings.Split(g[2], ",") {
				switch o {
				case "rw", "ro", "noprefix", "clone_children", "xattr", "favordynmods", "cpuset_v2_mode":
				default:
					if !strings.Contains(o, "=") {
						m.controllers = append(m.controllers, o)
					}
				}
			}
		default:
			continue
		}
		out = append(out, m)
	}
	return out
}

// unescapeMountinfo undoes mountinfo's octal escapes (\040 for a space).
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// hierarchyDir returns the directory of this process's own group in the
// hierarchy of controller (v2 when controller is "").
func hierarchyDir(mounts []cgroupMount, own map[string]string, controller string) (string, error) {
	p, ok := own[controller]
	name := controller
	if name == "" {
		name = "cgroup2"
	}
	if !ok {
		return "", fmt.Errorf("%w: this process is in no %s hierarchy", ErrUnsupported, name)
	}
	for _, m := range mounts {
		if controller == "" && !m.v2 || controller != "" && !contains(m.controllers, controller) {
			continue
		}
		rel, err := filepath.Rel(m.root, p)
		if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
			continue // this mount shows another part of the hierarchy
		}
		return filepath.Join(m.point, rel), nil
	}
	return "", fmt.Errorf("%w: %s hierarchy holding %s is not mounted", ErrUnsupported, name, p)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// writeFile writes value to an existing cgroup file.
func writeFile(file, value string) error {
	f, err := os.OpenFile(file, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString(value)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %q to %s: %w", value, file, err)
	}
	return nil
}

// readInt reads a file holding one integer ("max" reads as -1).
func readInt(file string) (int64, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return 0, err
	}
	s := strings.TrimSpace(string(b))
	if s == "max" {
		return -1, nil
	}
	return strconv.ParseInt(s, 10, 64)
}

// readKeyed reads key's value from a flat keyed file ("key value" lines).
func readKeyed(file, key string) (int64, bool) {
	b, err := os.ReadFile(file)
	if err != nil {
		return 0, false
	}
	for line := range strings.Lines(string(b)) {
		k, v, ok := strings.Cut(strings.TrimSpace(line), " ")
		if ok && k == key {
			n, err := strconv.ParseInt(v, 10, 64)
			return n, err == nil
		}
	}
	return 0, false
}

// readProcs returns the pids listed in dir/cgroup.procs.
func readProcs(dir string) ([]int, error) {
	b, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, f := range strings.Fields(string(b)) {
		if n, err := strconv.Atoi(f); err == nil {
			pids = append(pids, n)
		}
	}
	return pids, nil
}

// killProcs SIGKILLs every process listed in dir/cgroup.procs. Each pid is
// pinned with a pidfd and checked to still be in the group, so a pid reused
// by an unrelated process after the listing is never signalled.
func killProcs(dir, relPath string) error {
	pids, err := readProcs(dir)
	if err != nil {
		return err
	}
	var errs []error
	for _, pid := range pids {
		fd, err := unix.PidfdOpen(pid, 0)
		if err != nil {
			continue // gone already
		}
		if inGroup(pid, relPath) {
			if err := unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0); err != nil && err != unix.ESRCH {
				errs = append(errs, fmt.Errorf("kill %d: %w", pid, err))
			}
		}
		unix.Close(fd)
	}
	return errors.Join(errs...)
}

// inGroup reports whether /proc/<pid>/cgroup lists a group path ending in
// relPath (the sandbox's group relative to the hierarchies' roots).
func inGroup(pid int, relPath string) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cgroup")
	if err != nil {
		return false
	}
	for _, p := range parseProcCgroup(b) {
		if p == relPath || strings.HasSuffix(p, relPath) {
			return true
		}
	}
	return false
}

// removeDirs polls until the groups are empty, then removes them (and
// retries EBUSY, which the kernel returns for a moment after the last task
// left), until ctx ends.
func removeDirs(ctx context.Context, cg cgroup) error {
	backoff := 50 * time.Microsecond
	for {
		ok, err := cg.empty()
		if err == nil && ok {
			var left []error
			for _, d := range cg.dirs() {
				if err := unix.Rmdir(d); err != nil && err != unix.ENOENT {
					left = append(left, fmt.Errorf("rmdir %s: %w", d, err))
				}
			}
			if len(left) == 0 {
				return nil
			}
			err = errors.Join(left...)
		}
		if err != nil && errors.Is(err, os.ErrNotExist) {
			err = nil
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			if err == nil {
				err = errors.New("processes left")
			}
			return fmt.Errorf("sandbox: remove cgroup %s: %w (%w)", cg.dirs()[0], ctx.Err(), err)
		case <-t.C:
		}
		backoff = min(2*backoff, 10*time.Millisecond)
	}
}

// v1Driver manages groups in the memory, pids and cpu v1 hierarchies.
type v1Driver struct {
	parents map[string]string // controller -> parent group directory
}

func (d *v1Driver) version() int { return 1 }

func (d *v1Driver) create(id string, lim limits) (cgroup, error) {
	g := &v1Group{dirs_: map[string]string{}}
	for _, c := range v1Controllers {
		g.dirs_[c] = filepath.Join(d.parents[c], id)
	}
	g.rel = "/" + filepath.Base(d.parents["memory"]) + "/" + id
	var made []string
	fail := func(err error) (cgroup, error) {
		for _, dir := range made {
			unix.Rmdir(dir)
		}
		return nil, fmt.Errorf("sandbox: cgroup %s: %w", id, err)
	}
	for _, c := range v1Controllers {
		if contains(made, g.dirs_[c]) {
			continue // co-mounted controllers share a directory
		}
		if err := os.Mkdir(g.dirs_[c], 0o755); err != nil {
			if errors.Is(err, os.ErrExist) {
				err = fmt.Errorf("%w: %v", ErrExists, err)
			}
			return fail(err)
		}
		made = append(made, g.dirs_[c])
	}
	if lim != (limits{}) {
		if err := g.setLimits(lim); err != nil {
			return fail(err)
		}
	}
	return g, nil
}

func (g *v1Group) setLimits(lim limits) error {
	g.mu.Lock()
	dirs := g.dirs_
	g.mu.Unlock()
	mem := func(f string) string { return filepath.Join(dirs["memory"], f) }
	v := strconv.FormatInt(lim.memoryBytes, 10)
	if err := writeFile(mem("memory.limit_in_bytes"), v); err != nil {
		return err
	}
	// memsw (memory+swap) equal to the memory limit means no swap. Without
	// swap accounting the file is missing; swappiness 0 is the fallback.
	if _, err := os.Stat(mem("memory.memsw.limit_in_bytes")); err == nil {
		if err := writeFile(mem("memory.memsw.limit_in_bytes"), v); err != nil {
			return err
		}
	} else if err := writeFile(mem("memory.swappiness"), "0"); err != nil {
		return err
	}
	if err := writeFile(filepath.Join(dirs["pids"], "pids.max"), strconv.Itoa(lim.pidsMax)); err != nil {
		return err
	}
	shares := max(2, lim.cpuWeight*1024/100)
	if err := writeFile(filepath.Join(dirs["cpu"], "cpu.shares"), strconv.Itoa(shares)); err != nil {
		return err
	}
	if lim.cpuMilli > 0 {
		return g.setCPUMilli(lim.cpuMilli)
	}
	return nil
}

func (g *v1Group) setCPUMilli(milli int) error {
	dirs, _ := g.paths()
	quota := "-1"
	if milli > 0 {
		if err := writeFile(filepath.Join(dirs["cpu"], "cpu.cfs_period_us"), strconv.Itoa(cpuPeriodUs)); err != nil {
			return err
		}
		quota = strconv.Itoa(milli * cpuPeriodUs / 1000)
	}
	return writeFile(filepath.Join(dirs["cpu"], "cpu.cfs_quota_us"), quota)
}

// rename renames the group's directories (a group of the init pool
// becomes a sandbox's): v1 allows renaming a group within its parent, and
// its processes stay in it.
func (g *v1Group) rename(id string) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	next := map[string]string{}
	var done [][2]string
	for _, c := range v1Controllers {
		next[c] = filepath.Join(filepath.Dir(g.dirs_[c]), id)
		if contains(done2(done), g.dirs_[c]) {
			continue // co-mounted controllers share a directory
		}
		if err := unix.Rename(g.dirs_[c], next[c]); err != nil {
			for _, d := range done {
				unix.Rename(d[1], d[0])
			}
			if err == unix.EEXIST || err == unix.ENOTEMPTY {
				return fmt.Errorf("%w: cgroup %s", ErrExists, next[c])
			}
			return fmt.Errorf("sandbox: rename cgroup %s: %w", g.dirs_[c], err)
		}
		done = append(done, [2]string{g.dirs_[c], next[c]})
	}
	g.dirs_ = next
	g.rel = "/" + filepath.Base(filepath.Dir(next["memory"])) + "/" + id
	return nil
}

func done2(pairs [][2]string) []string {
	var out []string
	for _, p := range pairs {
		out = append(out, p[0])
	}
	return out
}

func (d *v1Driver) removeParent(ctx context.Context) error {
	var errs []error
	for _, c := range v1Controllers {
		if err := unix.Rmdir(d.parents[c]); err != nil && err != unix.ENOENT {
			errs = append(errs, fmt.Errorf("sandbox: rmdir %s: %w", d.parents[c], err))
		}
	}
	return errors.Join(errs...)
}

// v1Group is a sandbox's group in each v1 hierarchy.
type v1Group struct {
	mu    sync.Mutex        // guards dirs_ and rel (rename)
	dirs_ map[string]string // controller -> directory
	rel   string            // "/<parent>/<id>", the suffix of its path in /proc/<pid>/cgroup
}

// paths returns the group's directories by controller and its rel.
func (g *v1Group) paths() (map[string]string, string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.dirs_, g.rel
}

func (g *v1Group) cloneFD() int  { return -1 }
func (g *v1Group) closeCloneFD() {}

func (g *v1Group) attach(pid int) error {
	for _, d := range g.dirs() {
		if err := writeFile(filepath.Join(d, "cgroup.procs"), strconv.Itoa(pid)); err != nil {
			return fmt.Errorf("sandbox: attach: %w", err)
		}
	}
	return nil
}

func (g *v1Group) kill() error {
	var errs []error
	_, rel := g.paths()
	for _, d := range g.dirs() {
		if err := killProcs(d, rel); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (g *v1Group) empty() (bool, error) {
	for _, d := range g.dirs() {
		pids, err := readProcs(d)
		if err != nil {
			return false, err
		}
		if len(pids) > 0 {
			return false, nil
		}
	}
	return true, nil
}

func (g *v1Group) stats() (bool, int64) {
	dirs, _ := g.paths()
	mem := dirs["memory"]
	peak, _ := readInt(filepath.Join(mem, "memory.max_usage_in_bytes"))
	if n, ok := readKeyed(filepath.Join(mem, "memory.oom_control"), "oom_kill"); ok {
		return n > 0, peak
	}
	// Kernels before 4.13 lack the counter: hitting the limit is the hint.
	n, _ := readInt(filepath.Join(mem, "memory.failcnt"))
	return n > 0, peak
}

func (g *v1Group) dirs() []string {
	dirs, _ := g.paths()
	var out []string
	for _, c := range v1Controllers {
		if !contains(out, dirs[c]) {
			out = append(out, dirs[c])
		}
	}
	return out
}
