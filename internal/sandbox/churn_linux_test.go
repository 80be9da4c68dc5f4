//go:build linux

package sandbox

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// nsInodes returns the inodes of every namespace of kind (net, mnt,
// user, ...) that a live process of the host whose cgroup path contains
// group is in (others' namespaces may have reused freed inode numbers).
func nsInodes(kind, group string) map[uint64]bool {
	out := map[uint64]bool{}
	es, _ := os.ReadDir("/proc")
	for _, e := range es {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		if b, err := os.ReadFile("/proc/" + e.Name() + "/cgroup"); err != nil || !strings.Contains(string(b), "/"+group+"/") {
			continue
		}
		var st syscall.Stat_t
		if syscall.Stat("/proc/"+e.Name()+"/ns/"+kind, &st) == nil {
			out[st.Ino] = true
		}
	}
	return out
}

// childProcs lists the live processes whose parent is this process.
func childProcs() []int {
	var out []int
	me := strconv.Itoa(os.Getpid())
	es, _ := os.ReadDir("/proc")
	for _, e := range es {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		i := bytes.LastIndexByte(b, ')')
		if f := strings.Fields(string(b[i+1:])); len(f) > 1 && f[1] == me && f[0] != "Z" {
			out = append(out, pid)
		}
	}
	return out
}

func heapAlloc() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// leakableMounts lists the mounts of this mount namespace that sandboxes
// could leak: on their new root's place, of the helper, and namespace
// files (a bound netns keeps it alive).
func leakableMounts(t *testing.T) []string {
	out := sandboxMounts(t)
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, " - nsfs ") {
			out = append(out, l)
		}
	}
	return out
}

// TestCreateDestroy200 creates and destroys 200 sandboxes (half killed by
// Destroy, half exited on their own first), four at a time, then checks
// that nothing of them is left: no process, namespace, mount, cgroup, fd,
// id range, goroutine, or memory held.
func TestCreateDestroy200(t *testing.T) {
	m := newTestManager(t)
	// Warm up lazily created runtime state (netpoller, thread pool).
	for i := range 4 {
		var out syncBuffer
		spec := helperSpec(fmt.Sprint("warm-", i), &out, "hello")
		spec.ListenAddr = "127.0.0.1:9001"
		run(t, m, spec)
	}
	settle(t, m)
	goroutines, fds, heap := runtime.NumGoroutine(), countFDs(t), heapAlloc()
	mounts := leakableMounts(t)

	const n, parallel = 200, 4
	type seen struct {
		pid           int
		net, mnt, usr uint64
		dirs          []string
	}
	var (
		mu   sync.Mutex
		all  []seen
		errs []error
	)
	start := time.Now()
	var wg sync.WaitGroup
	for w := range parallel {
		wg.Go(func() {
			for i := w; i < n; i += parallel {
				var out syncBuffer
				args := []string{"hello", "sleep:1h"}
				if i%2 == 1 {
					args = []string{"hello", "sleep:20ms"}
				}
				spec := helperSpec(fmt.Sprint("churn-", i), &out, args...)
				spec.ListenAddr = "127.0.0.1:9001"
				s, err := m.Start(context.Background(), spec)
				if err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
					return
				}
				sn := seen{pid: s.Pid(), dirs: s.cg.dirs()}
				for kind, ino := range map[string]*uint64{"net": &sn.net, "mnt": &sn.mnt, "user": &sn.usr} {
					var st syscall.Stat_t
					if syscall.Stat(fmt.Sprintf("/proc/%d/ns/%s", s.Pid(), kind), &st) == nil {
						*ino = st.Ino
					}
				}
				if i%2 == 1 {
					<-s.Done()
				}
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				err = s.Destroy(ctx)
				cancel()
				mu.Lock()
				all = append(all, sn)
				if err != nil {
					errs = append(errs, err)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	took := time.Since(start)
	if len(errs) > 0 {
		t.Fatalf("%d errors, first: %v", len(errs), errs[0])
	}
	t.Logf("%d sandboxes created and destroyed in %v (%v each, %d at a time; race=%v)", n, took, took/n, parallel, raceEnabled)

	var problems []string
	deadline := time.Now().Add(15 * time.Second)
	for {
		problems = problems[:0]
		for _, kind := range []string{"net", "mnt", "user"} {
			live := nsInodes(kind, filepath.Base(parentDirs(m)[0]))
			// The pooled inits' namespaces are new ones, whose inode
			// numbers may be those of freed ones.
			for _, pid := range m.pooledPids() {
				var st syscall.Stat_t
				if syscall.Stat(fmt.Sprintf("/proc/%d/ns/%s", pid, kind), &st) == nil {
					delete(live, st.Ino)
				}
			}
			seen := 0
			for _, sn := range all {
				ino := map[string]uint64{"net": sn.net, "mnt": sn.mnt, "user": sn.usr}[kind]
				if ino != 0 {
					seen++ // (one that exited at once may not have been seen)
				}
				if ino != 0 && live[ino] {
					problems = append(problems, fmt.Sprintf("%s namespace %d of pid %d in use", kind, ino, sn.pid))
				}
			}
			if seen < n/2 {
				problems = append(problems, fmt.Sprintf("only %d %s namespaces seen", seen, kind))
			}
		}
		for _, sn := range all {
			if _, err := os.Stat(fmt.Sprintf("/proc/%d", sn.pid)); err == nil && alive(sn.pid) {
				problems = append(problems, fmt.Sprintf("pid %d alive", sn.pid))
			}
			for _, d := range sn.dirs {
				if _, err := os.Stat(d); err == nil {
					problems = append(problems, "cgroup "+d)
				}
			}
		}
		for _, d := range parentDirs(m) {
			es, _ := os.ReadDir(d)
			for _, e := range es {
				if e.IsDir() && !strings.HasPrefix(e.Name(), "_pool-") { // the init pool's
					problems = append(problems, "cgroup "+d+"/"+e.Name())
				}
			}
		}
		if c := slices.DeleteFunc(childProcs(), func(pid int) bool {
			return slices.Contains(m.pooledPids(), pid) || pid == m.spawner.pid()
		}); len(c) > 0 {
			problems = append(problems, fmt.Sprint("child processes ", c))
		}
		if got := leakableMounts(t); !slices.Equal(got, mounts) {
			problems = append(problems, fmt.Sprintf("mounts: %d lines, %d before", len(got), len(mounts)))
		}
		if c := countFDs(t); c != fds {
			problems = append(problems, fmt.Sprintf("fds: %d, %d before", c, fds))
		}
		if g := runtime.NumGoroutine(); g > goroutines {
			problems = append(problems, fmt.Sprintf("goroutines: %d, %d before", g, goroutines))
		}
		if u := m.ids.inUse(); u != 0 {
			problems = append(problems, fmt.Sprintf("%d id ranges held", u))
		}
		m.mu.Lock()
		if len(m.live) != 0 {
			problems = append(problems, fmt.Sprintf("%d sandboxes in the manager's table", len(m.live)))
		}
		m.mu.Unlock()
		if h := heapAlloc(); h > heap+4<<20 {
			problems = append(problems, fmt.Sprintf("heap: %d bytes, %d before", h, heap))
		}
		if len(problems) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("left after %d sandboxes (%d problems):\n%s", n, len(problems), strings.Join(problems[:min(len(problems), 20)], "\n"))
		}
		time.Sleep(20 * time.Millisecond)
	}
}
