package workermanager

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/emberfn/ember/internal/invoke"
	"github.com/emberfn/ember/internal/store"
)

// Provisioned concurrency: for each published version with a
// configuration the manager keeps that many initialised sandboxes
// (AWS_LAMBDA_INITIALIZATION_TYPE=provisioned-concurrency). They live in
// the version's idle pool like any other, marked provisioned: Acquire
// hands them out first, Release returns them to the pool whatever the
// keep-alive policy says, and neither keep-alive reaping nor reclaiming
// for room ever takes them. reconcileProvisioned, run on every tick of Run
// and on every change of configuration, creates the missing ones and
// removes the extra ones.

// provTarget is what one version should have.
type provTarget struct {
	fn       *store.Function
	n        int
	failure  string    // the last creation failure; "" once one succeeds
	failures int       // consecutive failures, for the back-off
	retryAt  time.Time // no new creation before then after a failure
	pending  int       // creations in flight
}

// farFuture is the expiry of a provisioned idle sandbox: never.
var farFuture = time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)

// SetProvisioned replaces what the versions of one function
// ("account.name") should have; versions not in want have none. Missing
// sandboxes are started and extra ones removed at once.
func (m *Manager) SetProvisioned(function string, want []store.ProvisionedVersion) {
	m.mu.Lock()
	keep := map[string]bool{}
	for _, pv := range want {
		if pv.Count <= 0 || pv.Function.Version == "" {
			continue
		}
		fn := pv.Function
		key := fn.VersionKey()
		keep[key] = true
		t := m.provisioned[key]
		if t == nil || t.fn.RevisionID != fn.RevisionID {
			t = &provTarget{}
			m.provisioned[key] = t
		}
		t.fn, t.n = &fn, pv.Count
	}
	for key := range m.provisioned {
		if strings.HasPrefix(key, function+":") && !keep[key] {
			delete(m.provisioned, key)
		}
	}
	m.mu.Unlock()
	m.reconcileProvisioned(m.cfg.Now())
}

// ProvisionedStatus is how many provisioned sandboxes of a version
// ("account.name:version") are initialised (idle or busy), and the last
// reason creating one failed ("" if the last attempt succeeded).
func (m *Manager) ProvisionedStatus(version string) (allocated int, failure string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	t := m.provisioned[version]
	if t == nil {
		return 0, ""
	}
	for _, sb := range m.sandboxes {
		if sb.provisioned && sb.fn == version && sb.revision == t.fn.RevisionID && (sb.state == Idle || sb.state == Busy) {
			allocated++
		}
	}
	return allocated, t.failure
}

// reconcileProvisioned starts the provisioned sandboxes that are missing
// and removes the extra ones (idle ones are destroyed, busy ones become
// ordinary sandboxes).
func (m *Manager) reconcileProvisioned(now time.Time) {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return
	}
	live := map[string][]*sandbox{} // pool key -> provisioned sandboxes, idle first
	for _, sb := range m.sandboxes {
		if !sb.provisioned || sb.state == Draining || sb.state == Dead || sb.state == Starting {
			// (Starting ones are counted by pending.)
			continue
		}
		if t := m.provisioned[sb.fn]; t == nil || t.fn.RevisionID != sb.revision {
			m.unprovisionLocked(sb)
			continue
		}
		pk := poolKey(sb.fn, sb.revision)
		if sb.state == Idle {
			live[pk] = append([]*sandbox{sb}, live[pk]...)
		} else {
			live[pk] = append(live[pk], sb)
		}
	}
	var todo []*store.Function
	for key, t := range m.provisioned {
		pk := poolKey(key, t.fn.RevisionID)
		have := len(live[pk]) + t.pending
		for _, sb := range live[pk] {
			if have <= t.n {
				break
			}
			m.unprovisionLocked(sb)
			have--
		}
		if have >= t.n || now.Before(t.retryAt) {
			continue
		}
		if m.current[key] != t.fn.RevisionID {
			m.current[key] = t.fn.RevisionID
			m.retireLocked(key, t.fn.RevisionID)
		}
		for ; have < t.n; have++ {
			todo = append(todo, t.fn)
			t.pending++
		}
	}
	m.wg.Add(len(todo))
	m.mu.Unlock()
	for _, fn := range todo {
		go m.provision(fn)
	}
}

// unprovisionLocked makes a provisioned sandbox an ordinary one: an idle
// one is destroyed, a busy one is released as any other.
func (m *Manager) unprovisionLocked(sb *sandbox) {
	sb.provisioned = false
	if sb.state != Idle {
		return
	}
	pk := poolKey(sb.fn, sb.revision)
	list := m.idle[pk]
	for i, x := range list {
		if x == sb {
			m.idle[pk] = append(list[:i:i], list[i+1:]...)
			break
		}
	}
	if len(m.idle[pk]) == 0 {
		delete(m.idle, pk)
	}
	sb.transition(Draining)
	m.destroyLocked(sb)
}

// provision makes one provisioned sandbox of fn and puts it in the idle
// pool. The caller has added it to m.wg.
func (m *Manager) provision(fn *store.Function) {
	defer m.wg.Done()
	key := fn.VersionKey()
	a, err := m.create(context.Background(), fn, true)
	m.mu.Lock()
	defer m.mu.Unlock()
	t := m.provisioned[key]
	if t != nil && t.fn.RevisionID == fn.RevisionID && t.pending > 0 {
		t.pending--
	}
	if err != nil {
		m.log.Warn("provisioned sandbox failed", "function", key, "err", err)
		if t != nil && t.fn.RevisionID == fn.RevisionID {
			t.failures++
			t.failure = failureReason(err)
			backoff := time.Second << min(t.failures-1, 6)
			t.retryAt = m.cfg.Now().Add(backoff)
		}
		return
	}
	sb, ok := m.sandboxes[a.SandboxID]
	if !ok || sb.state != Busy {
		return
	}
	if t != nil {
		t.failures, t.failure, t.retryAt = 0, "", time.Time{}
	}
	if m.closed || !sb.provisioned || t == nil || t.fn.RevisionID != sb.revision || m.current[key] != sb.revision {
		sb.transition(Draining)
		m.destroyLocked(sb)
		return
	}
	sb.transition(Idle)
	sb.lastUsed = m.cfg.Now()
	sb.expires = farFuture
	pk := poolKey(sb.fn, sb.revision)
	m.idle[pk] = append(m.idle[pk], sb)
	m.log.Debug("provisioned sandbox ready", "sandbox", sb.id, "function", key, "init", a.InitDuration)
}

// failureReason is Lambda's StatusReason for a failed allocation.
func failureReason(err error) string {
	var ie *invoke.InitError
	if errors.As(err, &ie) {
		return "FUNCTION_ERROR_INIT_FAILURE"
	}
	return err.Error()
}
