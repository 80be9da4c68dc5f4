//go:build linux

package sandbox

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// idLockDir holds one lock file per host id range in use on the host
// (named by the range's first uid): a range is taken only with an
// exclusive flock on its file, held until the sandbox is destroyed, so
// that Managers of different processes (two workers, tests) never hand
// out the same range. A dead process's locks go with it.
var idLockDir = "/run/ember/sandbox-ids"

// idRanges hands out the host id ranges of live sandboxes. A range is
// released only once nothing of its sandbox runs any more (Destroy
// succeeded), so two live sandboxes never share an id.
type idRanges struct {
	m IDMap

	mu    sync.Mutex
	used  []bool           // by range index
	locks map[int]*os.File // by range index: the flocked lock files
}

func newIDRanges(m IDMap) (*idRanges, error) {
	switch {
	case m.Count < IDRangeSize || m.Count%IDRangeSize != 0:
		return nil, fmt.Errorf("sandbox: id map count %d: want a positive multiple of %d", m.Count, IDRangeSize)
	case m.UIDStart == 0 || m.GIDStart == 0:
		return nil, fmt.Errorf("sandbox: id map starts at uid %d gid %d: the host's root must not be mapped", m.UIDStart, m.GIDStart)
	case uint64(m.UIDStart)+uint64(m.Count) > 1<<32-1 || uint64(m.GIDStart)+uint64(m.Count) > 1<<32-1:
		return nil, fmt.Errorf("sandbox: id map %d/%d+%d exceeds the 32-bit id space", m.UIDStart, m.GIDStart, m.Count)
	}
	if err := os.MkdirAll(idLockDir, 0o700); err != nil {
		return nil, fmt.Errorf("sandbox: id range locks: %w", err)
	}
	return &idRanges{m: m, used: make([]bool, m.Count/IDRangeSize), locks: map[int]*os.File{}}, nil
}

// idRange is one sandbox's host ids: inside id i is host uid uid+i and gid
// gid+i.
type idRange struct {
	index    int
	uid, gid int
}

// get reserves the lowest free range (so the lock files stay as few as
// the most sandboxes ever live at once).
func (r *idRanges) get() (idRange, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := len(r.used)
	for idx := range n {
		if r.used[idx] {
			continue
		}
		off := idx * IDRangeSize
		ir := idRange{index: idx, uid: int(r.m.UIDStart) + off, gid: int(r.m.GIDStart) + off}
		f, err := os.OpenFile(filepath.Join(idLockDir, strconv.Itoa(ir.uid)), os.O_RDONLY|os.O_CREATE, 0o600)
		if err != nil {
			return idRange{}, fmt.Errorf("sandbox: id range lock: %w", err)
		}
		if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
			f.Close() // another process's sandbox has it
			if err == unix.EWOULDBLOCK {
				continue
			}
			return idRange{}, fmt.Errorf("sandbox: id range lock: %w", err)
		}
		r.used[idx] = true
		r.locks[idx] = f
		return ir, nil
	}
	return idRange{}, fmt.Errorf("%w: all %d in use", ErrNoIDs, n)
}

func (r *idRanges) put(ir idRange) {
	r.mu.Lock()
	r.used[ir.index] = false
	if f := r.locks[ir.index]; f != nil {
		f.Close()
		delete(r.locks, ir.index)
	}
	r.mu.Unlock()
}

// inUse returns the number of ranges held.
func (r *idRanges) inUse() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, u := range r.used {
		if u {
			n++
		}
	}
	return n
}

// defaultIDMap is the "ember" entries of /etc/subuid and /etc/subgid
// (both needed), else the built-in default.
func defaultIDMap() (IDMap, string) {
	u, uok := readSubID("/etc/subuid", "ember")
	g, gok := readSubID("/etc/subgid", "ember")
	if uok && gok {
		return IDMap{UIDStart: u[0], GIDStart: g[0], Count: min(u[1], g[1]) / IDRangeSize * IDRangeSize}, "/etc/subuid and /etc/subgid"
	}
	return IDMap{UIDStart: DefaultIDMapStart, GIDStart: DefaultIDMapStart, Count: DefaultIDMapCount}, "default"
}

// readSubID returns the first range (start, count) of user in a
// subuid(5)-format file.
func readSubID(file, user string) ([2]uint32, bool) {
	b, err := os.ReadFile(file)
	if err != nil {
		return [2]uint32{}, false
	}
	return parseSubID(b, user)
}

func parseSubID(b []byte, user string) ([2]uint32, bool) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Split(strings.TrimSpace(sc.Text()), ":")
		if len(f) != 3 || f[0] != user {
			continue
		}
		start, err1 := strconv.ParseUint(f[1], 10, 32)
		count, err2 := strconv.ParseUint(f[2], 10, 32)
		if err1 == nil && err2 == nil && count >= IDRangeSize {
			return [2]uint32{uint32(start), uint32(count)}, true
		}
	}
	return [2]uint32{}, false
}
