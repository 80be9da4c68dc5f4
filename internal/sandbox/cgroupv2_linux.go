//go:build linux

package sandbox

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// cgroup v2 layout. The "no internal processes" rule lets a non-root group
// hand controllers to its children (cgroup.subtree_control) only while it
// holds no processes itself, and this process sits in its own group <own>.
// So:
//
//	<own>/                      subtree_control +memory +pids +cpu
//	<own>/<parent>.manager/     this process, moved here only if needed
//	<own>/<parent>/             no processes; subtree_control +memory +pids +cpu
//	<own>/<parent>/<id>/        one leaf per sandbox; limits set here
//
// If <own> is the root group, or already delegates the controllers, this
// process stays where it is. Otherwise (typical for a systemd service with
// Delegate=yes) it moves itself into the <parent>.manager leaf so that
// <own> may enable the controllers; if <own> holds other processes too,
// NewManager fails and says so. removeParent undoes all of it: it disables
// the controllers it enabled in <own>, moves this process back to <own> and
// removes the leaf (best effort: if another child of <own> uses the
// controllers, the process stays in the leaf and an error says so).
//
// Sandboxes are started directly in their leaf with CLONE_INTO_CGROUP
// (SysProcAttr.UseCgroupFD), so no process of a sandbox ever runs outside
// its limits.

// v2Controllers are the controllers a v2 sandbox group is limited by.
var v2Controllers = []string{"memory", "pids", "cpu"}

// v2Driver manages sandbox groups in a cgroup v2 hierarchy.
type v2Driver struct {
	own         string   // this process's group directory
	parent      string   // <own>/<parent>
	controllers []string // controllers delegated to the sandboxes
	enabled     []string // controllers this driver enabled in <own>
	leaf        string   // <own>/<parent>.manager if this process moved there
}

// newV2Driver makes the parent group under own, delegating controllers
// (v2Controllers in production; the tests pass fewer on hosts whose v2
// hierarchy has none).
func newV2Driver(own, parent string, controllers []string) (*v2Driver, error) {
	d := &v2Driver{own: own, parent: filepath.Join(own, parent), controllers: controllers}
	avail, err := os.ReadFile(filepath.Join(own, "cgroup.controllers"))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnsupported, err)
	}
	var missing []string
	for _, c := range controllers {
		if !contains(strings.Fields(string(avail)), c) {
			missing = append(missing, c)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("%w: cgroup v2 controllers %v are not delegated to %s", ErrUnsupported, missing, own)
	}
	if err := d.enableInOwn(); err != nil {
		d.removeParent(context.Background())
		return nil, err
	}
	if err := os.Mkdir(d.parent, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		d.removeParent(context.Background())
		return nil, fmt.Errorf("sandbox: create cgroup: %w", err)
	}
	if err := enable(d.parent, controllers); err != nil {
		d.removeParent(context.Background())
		return nil, fmt.Errorf("sandbox: %w", err)
	}
	return d, nil
}

// enableInOwn enables the controllers in <own>'s subtree_control, first
// moving this process into a leaf if <own> may not hold processes then.
func (d *v2Driver) enableInOwn() error {
	cur, err := os.ReadFile(filepath.Join(d.own, "cgroup.subtree_control"))
	if err != nil {
		return fmt.Errorf("sandbox: %w", err)
	}
	var need []string
	for _, c := range d.controllers {
		if !contains(strings.Fields(string(cur)), c) {
			need = append(need, c)
		}
	}
	if len(need) == 0 {
		return nil
	}
	err = enable(d.own, need)
	if errors.Is(err, unix.EBUSY) {
		d.leaf = d.parent + ".manager"
		if err := os.Mkdir(d.leaf, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			return fmt.Errorf("sandbox: create cgroup: %w", err)
		}
		if err := writeFile(filepath.Join(d.leaf, "cgroup.procs"), strconv.Itoa(os.Getpid())); err != nil {
			return fmt.Errorf("sandbox: move this process out of %s: %w", d.own, err)
		}
		err = enable(d.own, need)
		if errors.Is(err, unix.EBUSY) {
			return fmt.Errorf("%w: cgroup %s holds other processes than this one; run it in a cgroup of its own (systemd: Delegate=yes)", ErrUnsupported, d.own)
		}
	}
	if err != nil {
		return fmt.Errorf("sandbox: %w", err)
	}
	d.enabled = need
	return nil
}

// enable writes "+c" for each controller to dir/cgroup.subtree_control.
func enable(dir string, controllers []string) error {
	if len(controllers) == 0 {
		return nil
	}
	v := "+" + strings.Join(controllers, " +")
	return writeFile(filepath.Join(dir, "cgroup.subtree_control"), v)
}

func (d *v2Driver) version() int { return 2 }

func (d *v2Driver) create(id string, lim limits) (cgroup, error) {
	g := &v2Group{dir: filepath.Join(d.parent, id), fd: -1, controllers: d.controllers}
	g.rel = "/" + filepath.Base(d.parent) + "/" + id
	if err := os.Mkdir(g.dir, 0o755); err != nil {
		if errors.Is(err, os.ErrExist) {
			err = fmt.Errorf("%w: %v", ErrExists, err)
		}
		return nil, fmt.Errorf("sandbox: cgroup %s: %w", id, err)
	}
	fail := func(err error) (cgroup, error) {
		g.closeCloneFD()
		unix.Rmdir(g.dir)
		return nil, fmt.Errorf("sandbox: cgroup %s: %w", id, err)
	}
	if lim != (limits{}) {
		if err := g.setLimits(lim); err != nil {
			return fail(err)
		}
	}
	fd, err := unix.Open(g.dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fail(err)
	}
	g.fd = fd
	return g, nil
}

func (d *v2Driver) removeParent(ctx context.Context) error {
	var errs []error
	if err := unix.Rmdir(d.parent); err != nil && err != unix.ENOENT {
		errs = append(errs, fmt.Errorf("sandbox: rmdir %s: %w", d.parent, err))
	}
	if len(d.enabled) > 0 {
		v := "-" + strings.Join(d.enabled, " -")
		if err := writeFile(filepath.Join(d.own, "cgroup.subtree_control"), v); err != nil {
			errs = append(errs, fmt.Errorf("sandbox: %w", err))
		} else {
			d.enabled = nil
		}
	}
	if d.leaf != "" && len(d.enabled) == 0 {
		if err := writeFile(filepath.Join(d.own, "cgroup.procs"), strconv.Itoa(os.Getpid())); err != nil {
			errs = append(errs, fmt.Errorf("sandbox: move this process back: %w", err))
		} else if err := unix.Rmdir(d.leaf); err != nil && err != unix.ENOENT {
			errs = append(errs, fmt.Errorf("sandbox: rmdir %s: %w", d.leaf, err))
		} else {
			d.leaf = ""
		}
	}
	return errors.Join(errs...)
}

// v2Group is a sandbox's leaf group.
type v2Group struct {
	controllers []string // those delegated to it
	dir         string
	rel         string // "/<parent>/<id>", the suffix of its path in /proc/<pid>/cgroup
	fd          int    // directory fd for CLONE_INTO_CGROUP, -1 once closed
}

func (g *v2Group) cloneFD() int { return g.fd }

func (g *v2Group) closeCloneFD() {
	if g.fd >= 0 {
		unix.Close(g.fd)
		g.fd = -1
	}
}

// attach is a no-op check: the process was cloned into the group.
func (g *v2Group) attach(pid int) error {
	if !inGroup(pid, g.rel) {
		return fmt.Errorf("sandbox: process %d is not in %s", pid, g.dir)
	}
	return nil
}

func (g *v2Group) kill() error {
	// cgroup.kill (Linux 5.14) kills the whole group atomically, including
	// processes forked while it runs.
	err := writeFile(filepath.Join(g.dir, "cgroup.kill"), "1")
	if err == nil || !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if _, serr := os.Stat(g.dir); serr != nil {
		return nil // the group is gone
	}
	return killProcs(g.dir, g.rel)
}

func (g *v2Group) empty() (bool, error) {
	pids, err := readProcs(g.dir)
	return len(pids) == 0, err
}

func (g *v2Group) stats() (bool, int64) {
	n, _ := readKeyed(filepath.Join(g.dir, "memory.events"), "oom_kill")
	peak, err := readInt(filepath.Join(g.dir, "memory.peak"))
	if err != nil {
		peak, _ = readInt(filepath.Join(g.dir, "memory.current"))
	}
	return n > 0, peak
}

func (g *v2Group) dirs() []string { return []string{g.dir} }

func (g *v2Group) setCPUMilli(milli int) error {
	if !contains(g.controllers, "cpu") {
		return nil
	}
	v := "max " + strconv.Itoa(cpuPeriodUs)
	if milli > 0 {
		v = fmt.Sprintf("%d %d", milli*cpuPeriodUs/1000, cpuPeriodUs)
	}
	return writeFile(filepath.Join(g.dir, "cpu.max"), v)
}

func (g *v2Group) setLimits(lim limits) error {
	type setting struct{ controller, file, value string }
	settings := []setting{
		{"memory", "memory.max", strconv.FormatInt(lim.memoryBytes, 10)},
		{"memory", "memory.swap.max", "0"}, // absent without swap accounting
		{"memory", "memory.oom.group", "1"},
		{"pids", "pids.max", strconv.Itoa(lim.pidsMax)},
		{"cpu", "cpu.weight", strconv.Itoa(lim.cpuWeight)},
	}
	if lim.cpuMilli > 0 {
		settings = append(settings, setting{"cpu", "cpu.max", fmt.Sprintf("%d %d", lim.cpuMilli*cpuPeriodUs/1000, cpuPeriodUs)})
	}
	for _, s := range settings {
		if !contains(g.controllers, s.controller) {
			continue
		}
		f := filepath.Join(g.dir, s.file)
		if s.file == "memory.swap.max" {
			if _, err := os.Stat(f); err != nil {
				continue
			}
		}
		if err := writeFile(f, s.value); err != nil {
			return err
		}
	}
	return nil
}
