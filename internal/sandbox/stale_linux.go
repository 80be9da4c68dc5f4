//go:build linux

package sandbox

import (
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// staleName matches the parent groups Managers make (ember-<pid>, and
// names like ember-test-<pid>-3, ember-runtimes-test-<pid> or
// ember-<pid>.manager); the number is the pid of the process that made
// them.
var staleName = regexp.MustCompile(`^ember-(?:[a-z]+-)*([0-9]+)(?:[-.][A-Za-z0-9._-]*)?$`)

// staleWait bounds how long cleanStale waits for groups whose last
// processes are still exiting.
const staleWait = 2 * time.Second

// cleanStale removes the groups that a dead process left next to where
// this one makes its own: those in dirs whose name matches staleName with
// the pid of no live process. It only removes empty groups (rmdir): a
// group that still holds processes is left, whoever they belong to (a
// dead Ember's sandboxes die with it, by their parent-death signal). It
// returns the directories removed.
func cleanStale(dirs []string, log *slog.Logger) []string {
	self := os.Getpid()
	var removed []string
	deadline := time.Now().Add(staleWait)
	for _, dir := range dirs {
		ents, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, e := range ents {
			m := staleName.FindStringSubmatch(e.Name())
			if !e.IsDir() || m == nil {
				continue
			}
			pid, err := strconv.Atoi(m[1])
			if err != nil || pid == self || pid <= 0 || processExists(pid) {
				continue
			}
			p := filepath.Join(dir, e.Name())
			if err := removeTree(p, deadline); err != nil {
				log.Warn("cannot remove a dead process's cgroup", "dir", p, "err", err)
				continue
			}
			log.Info("removed a dead process's cgroup", "dir", p)
			removed = append(removed, p)
		}
	}
	return removed
}

func processExists(pid int) bool {
	_, err := os.Stat("/proc/" + strconv.Itoa(pid))
	return err == nil
}

// removeTree removes the cgroup directory dir and its descendants, deepest
// first. A group whose processes are all gone may be busy for a moment:
// EBUSY is retried until deadline, as long as the group lists no process.
func removeTree(dir string, deadline time.Time) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return err
	}
	for _, e := range ents {
		if e.IsDir() {
			if err := removeTree(filepath.Join(dir, e.Name()), deadline); err != nil {
				return err
			}
		}
	}
	backoff := time.Millisecond
	for {
		err := unix.Rmdir(dir)
		if err == nil || err == unix.ENOENT {
			return nil
		}
		if err != unix.EBUSY || time.Now().After(deadline) {
			return err
		}
		if pids, _ := readProcs(dir); len(pids) > 0 {
			return errors.New("it holds processes")
		}
		time.Sleep(backoff)
		backoff = min(2*backoff, 50*time.Millisecond)
	}
}
