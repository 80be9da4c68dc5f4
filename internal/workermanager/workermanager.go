// Package workermanager is the Worker Manager: it tracks every sandbox, idle
// or busy, hands out a warm one (most recently used first) or has a new one
// made on a worker that Placement picks, and reclaims idle ones.
package workermanager

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emberfn/ember/internal/invoke"
	"github.com/emberfn/ember/internal/lambdaapi"
	"github.com/emberfn/ember/internal/store"
)

// ErrShutdown is returned once the manager is shutting down.
var ErrShutdown = errors.New("workermanager: shutting down")

// Worker is what the manager needs of a worker host.
type Worker interface {
	invoke.Invoker
	// CreateSandbox makes a sandbox for fn and initialises its runtime,
	// returning the init duration; an *invoke.InitError if init failed.
	CreateSandbox(ctx context.Context, id string, fn *store.Function) (time.Duration, error)
	// DestroySandbox kills the sandbox and releases all it holds.
	DestroySandbox(ctx context.Context, id string) error
}

// Placer picks the worker for a new sandbox and holds its memory.
type Placer interface {
	Pick(memMB int) (string, error)
	Free(workerID string, memMB int)
}

// FreeReporter is what a Placer may also tell: each worker's memory not
// held by a sandbox. With it, reclaim under memory pressure destroys idle
// sandboxes only on a worker where that makes room (placement.Service has
// it); without it, the least recently used idle sandbox anywhere goes.
type FreeReporter interface {
	FreeMB() map[string]int
}

// Scaler grants each new sandbox of a function against its scaling rate
// (the Counting Service).
type Scaler interface {
	AllowNewSandbox(account, function string) error
}

// Config configures the manager. Placement and Workers are required.
type Config struct {
	Placement Placer
	// Scaler, if set, limits how fast a function's sandboxes multiply.
	Scaler Scaler
	// Workers finds a worker by id.
	Workers func(id string) (Worker, bool)
	// KeepAlive is how long an idle sandbox stays warm (default 10 min)
	// when no Policy is set, and the tick of reclaim and pre-warming.
	KeepAlive time.Duration
	// Policy decides, after each invocation, how long its sandbox stays
	// warm or whether it is released and a new one pre-warmed ahead of the
	// next likely invocation (default FixedPolicy{KeepAlive}).
	Policy Policy
	Now    func() time.Time
	Logger *slog.Logger
}

// sandbox is one row of the table. Its fields are guarded by Manager.mu.
type sandbox struct {
	id       string
	workerID string
	worker   Worker
	fn       string // account.name:version (store.Function.VersionKey)
	revision string
	memMB    int
	state    State
	lastUsed time.Time
	expires  time.Time       // an idle sandbox is reclaimed from then on
	spec     *store.Function // what it was made for (to pre-warm another)
	// provisioned: kept for the version's provisioned concurrency (see
	// provisioned.go): never reaped by keep-alive nor reclaimed for room.
	provisioned bool
}

// Manager is the sandbox table.
//
// Lock order: mu only; it is never held across a call to a worker.
type Manager struct {
	cfg Config
	log *slog.Logger
	seq atomic.Uint64
	wg  sync.WaitGroup // destroys in flight
	// rounds counts Run's finished rounds of upkeep (reclaim, pre-warm,
	// provisioned concurrency).
	rounds atomic.Uint64

	mu        sync.Mutex
	closed    bool
	sandboxes map[string]*sandbox
	idle      map[string][]*sandbox // by version key+"@"+revision; most recently used last
	current   map[string]string     // version key -> newest revision seen
	prewarms  map[string]*prewarm   // version key -> the pre-warm due
	// provisioned: version key -> its provisioned concurrency.
	provisioned map[string]*provTarget
}

// New makes a manager; call Run for keep-alive reclaim.
func New(cfg Config) *Manager {
	if cfg.KeepAlive == 0 {
		cfg.KeepAlive = 10 * time.Minute
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Policy == nil {
		cfg.Policy = FixedPolicy{KeepAlive: cfg.KeepAlive}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Manager{cfg: cfg, log: cfg.Logger.With("component", "workermanager"),
		sandboxes: map[string]*sandbox{}, idle: map[string][]*sandbox{}, current: map[string]string{},
		prewarms: map[string]*prewarm{}, provisioned: map[string]*provTarget{}}
}

// Sandboxes are pooled per function version (account.name:version, see
// store.Function.VersionKey) and revision: $LATEST, 1, 2, ... of one
// function never share a sandbox, and a new revision of $LATEST never
// reuses the old one's.
func poolKey(version, revision string) string { return version + "@" + revision }

// Acquire reserves a sandbox for one invocation of fn (a $LATEST or a
// published version): the most recently used idle one of that version's
// current revision (a provisioned one first), else a new one (a cold
// start).
func (m *Manager) Acquire(ctx context.Context, fn *store.Function) (invoke.Assignment, error) {
	key := fn.VersionKey()
	m.cfg.Policy.Observe(key, m.cfg.Now())
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return invoke.Assignment{}, ErrShutdown
	}
	delete(m.prewarms, key) // the invocation it was for has come
	if m.current[key] != fn.RevisionID {
		// A new revision of code or configuration retires the old one's
		// idle sandboxes; busy ones are destroyed when released.
		m.current[key] = fn.RevisionID
		m.retireLocked(key, fn.RevisionID)
	}
	pk := poolKey(key, fn.RevisionID)
	if list := m.idle[pk]; len(list) > 0 {
		i := len(list) - 1
		for j := i; j >= 0; j-- {
			if list[j].provisioned {
				i = j
				break
			}
		}
		sb := list[i]
		m.idle[pk] = append(list[:i:i], list[i+1:]...)
		sb.transition(Busy)
		m.mu.Unlock()
		return invoke.Assignment{SandboxID: sb.id, WorkerID: sb.workerID, Worker: sb.worker}, nil
	}
	m.mu.Unlock()
	return m.create(ctx, fn, false)
}

// create makes a new sandbox for fn on a worker that Placement picks; a
// provisioned one is not subject to the scaling rate and is initialised
// as Lambda initialises provisioned concurrency.
func (m *Manager) create(ctx context.Context, fn *store.Function, provisioned bool) (invoke.Assignment, error) {
	t0 := time.Now()
	if m.cfg.Scaler != nil && !provisioned {
		if err := m.cfg.Scaler.AllowNewSandbox(fn.AccountID, fn.Name); err != nil {
			return invoke.Assignment{}, err
		}
	}
	workerID, err := m.cfg.Placement.Pick(fn.MemorySize)
	if err != nil {
		// Make room by reclaiming the least recently used idle sandboxes
		// of a worker where that makes room; with none, answer at once.
		for err != nil && m.reclaimFor(fn.MemorySize) {
			workerID, err = m.cfg.Placement.Pick(fn.MemorySize)
		}
		if err != nil {
			m.log.WarnContext(ctx, "no capacity for a new sandbox", "memory_mb", fn.MemorySize, "err", err)
			// Lambda answers a throttle it has no capacity for with a 429
			// TooManyRequestsException (its Reason values all name a
			// limit, none of which this is, so there is none), which
			// callers and the async queue retry.
			e := lambdaapi.Errorf(lambdaapi.TooManyRequests,
				"No worker has room for another %d MB execution environment; retry later", fn.MemorySize)
			e.RetryAfterSeconds = "1"
			return invoke.Assignment{}, e
		}
	}
	w, ok := m.cfg.Workers(workerID)
	if !ok {
		m.cfg.Placement.Free(workerID, fn.MemorySize)
		return invoke.Assignment{}, fmt.Errorf("workermanager: worker %s is not reachable", workerID)
	}
	sb := &sandbox{
		id:       fmt.Sprintf("sb-%d-%d", time.Now().UnixNano()%1e9, m.seq.Add(1)),
		workerID: workerID, worker: w, fn: fn.VersionKey(), revision: fn.RevisionID,
		memMB: fn.MemorySize, state: Starting, spec: fn, provisioned: provisioned,
	}
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		m.cfg.Placement.Free(workerID, fn.MemorySize)
		return invoke.Assignment{}, ErrShutdown
	}
	m.sandboxes[sb.id] = sb
	m.mu.Unlock()

	// The sandbox outlives the caller's request: a caller that goes away
	// during a cold start still leaves a warm sandbox for the next one.
	made := fn
	if provisioned {
		c := *fn
		c.InitializationType = store.InitProvisioned
		made = &c
	}
	t1 := time.Now()
	initDur, err := w.CreateSandbox(context.WithoutCancel(ctx), sb.id, made)
	t2 := time.Now()
	m.mu.Lock()
	if err != nil {
		sb.transition(Dead)
		delete(m.sandboxes, sb.id)
		m.mu.Unlock()
		m.cfg.Placement.Free(workerID, fn.MemorySize)
		return invoke.Assignment{}, err
	}
	sb.transition(Busy)
	m.mu.Unlock()
	m.log.DebugContext(ctx, "sandbox created", "sandbox", sb.id, "worker", workerID, "init", initDur,
		"place", t1.Sub(t0), "create", t2.Sub(t1), "after", time.Since(t2))
	return invoke.Assignment{SandboxID: sb.id, WorkerID: workerID, Worker: w, Cold: true, InitDuration: initDur}, nil
}

// Release returns a sandbox after its invocation: to the idle pool if it is
// healthy and of the function's current revision, else it is destroyed.
func (m *Manager) Release(a invoke.Assignment, healthy bool) {
	m.mu.Lock()
	sb, ok := m.sandboxes[a.SandboxID]
	if !ok || sb.state != Busy {
		m.mu.Unlock()
		return
	}
	now := m.cfg.Now()
	w := m.cfg.Policy.Released(sb.fn, now)
	if healthy && !m.closed && m.current[sb.fn] == sb.revision && sb.provisioned {
		// Provisioned: back to the pool whatever the policy says.
		sb.transition(Idle)
		sb.lastUsed = now
		sb.expires = farFuture
		pk := poolKey(sb.fn, sb.revision)
		m.idle[pk] = append(m.idle[pk], sb)
		m.mu.Unlock()
		return
	}
	if !healthy || m.closed || m.current[sb.fn] != sb.revision || w.KeepAlive <= 0 {
		sb.transition(Draining)
		m.destroyLocked(sb)
		m.mu.Unlock()
		return
	}
	if w.Prewarm > 0 {
		// The next invocation is not expected soon: give this sandbox
		// back now and have a new one ready when it is.
		m.prewarms[sb.fn] = &prewarm{fn: sb.spec, due: now.Add(w.Prewarm), keep: w.KeepAlive}
		sb.transition(Draining)
		m.destroyLocked(sb)
		m.mu.Unlock()
		return
	}
	sb.transition(Idle)
	sb.lastUsed = now
	sb.expires = now.Add(w.KeepAlive)
	pk := poolKey(sb.fn, sb.revision)
	m.idle[pk] = append(m.idle[pk], sb)
	m.mu.Unlock()
}

// prewarm is a sandbox to make ahead of a likely invocation.
type prewarm struct {
	fn   *store.Function
	due  time.Time
	keep time.Duration
}

// startPrewarms makes the sandboxes whose pre-warm is due, idle and ready
// for the invocation the policy expects.
func (m *Manager) startPrewarms(now time.Time) {
	m.mu.Lock()
	var due []*prewarm
	for key, p := range m.prewarms {
		if now.Before(p.due) {
			continue
		}
		delete(m.prewarms, key)
		if !m.closed && m.current[key] == p.fn.RevisionID && len(m.idle[poolKey(key, p.fn.RevisionID)]) == 0 {
			due = append(due, p)
		}
	}
	if m.closed {
		due = nil
	}
	m.wg.Add(len(due))
	m.mu.Unlock()
	for _, p := range due {
		go func() {
			defer m.wg.Done()
			a, err := m.create(context.Background(), p.fn, false)
			if err != nil {
				m.log.Debug("pre-warm failed", "function", p.fn.VersionKey(), "err", err)
				return
			}
			m.mu.Lock()
			defer m.mu.Unlock()
			sb, ok := m.sandboxes[a.SandboxID]
			if !ok || sb.state != Busy {
				return
			}
			if m.closed || m.current[sb.fn] != sb.revision {
				sb.transition(Draining)
				m.destroyLocked(sb)
				return
			}
			sb.transition(Idle)
			sb.lastUsed = m.cfg.Now()
			sb.expires = sb.lastUsed.Add(p.keep)
			pk := poolKey(sb.fn, sb.revision)
			m.idle[pk] = append(m.idle[pk], sb)
		}()
	}
}

// SandboxExited is a worker's report that a sandbox's processes exited on
// their own: an idle one is removed at once; a busy one goes when its
// invocation is released.
func (m *Manager) SandboxExited(id string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	sb, ok := m.sandboxes[id]
	if !ok || sb.state != Idle {
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

// Retire destroys idle sandboxes and makes busy ones go when released:
// target "account.name:version" (a version key) retires that version's
// (changed or deleted), "account.name" those of every version of the
// function (deleted).
func (m *Manager) Retire(target string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if strings.Contains(target, ":") {
		m.retireLocked(target, "")
		delete(m.current, target)
		delete(m.prewarms, target)
		delete(m.provisioned, target)
		m.cfg.Policy.Forget(target)
		return
	}
	prefix := target + ":"
	for pk := range m.idle {
		if strings.HasPrefix(pk, prefix) {
			m.drainLocked(pk)
		}
	}
	for version := range m.provisioned {
		if strings.HasPrefix(version, prefix) {
			delete(m.provisioned, version)
		}
	}
	for version := range m.current {
		if strings.HasPrefix(version, prefix) {
			delete(m.current, version)
			delete(m.prewarms, version)
			m.cfg.Policy.Forget(version)
		}
	}
}

// retireLocked drains a version's idle sandboxes of every revision but
// keep.
func (m *Manager) retireLocked(version, keep string) {
	for pk := range m.idle {
		if strings.HasPrefix(pk, version+"@") && pk != poolKey(version, keep) {
			m.drainLocked(pk)
		}
	}
}

// drainLocked destroys every idle sandbox of one pool.
func (m *Manager) drainLocked(pk string) {
	for _, sb := range m.idle[pk] {
		sb.transition(Draining)
		m.destroyLocked(sb)
	}
	delete(m.idle, pk)
}

// destroyLocked destroys a draining sandbox in the background; the
// manager's WaitGroup owns that goroutine.
func (m *Manager) destroyLocked(sb *sandbox) {
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := sb.worker.DestroySandbox(ctx, sb.id); err != nil {
			m.log.Warn("destroying a sandbox failed", "sandbox", sb.id, "worker", sb.workerID, "err", err)
		}
		m.cfg.Placement.Free(sb.workerID, sb.memMB)
		m.mu.Lock()
		sb.transition(Dead)
		delete(m.sandboxes, sb.id)
		m.mu.Unlock()
	}()
}

// reclaimFor destroys one idle sandbox to make room for a new one of memMB
// and waits until it is gone: the least recently used idle sandbox of the
// worker where reclaiming makes room with the fewest destroyed (the one
// with the most free memory; of equals, the one whose idle sandbox is
// oldest). It destroys nothing, and answers false, if no worker can be
// given room that way. Provisioned sandboxes are never reclaimed.
func (m *Manager) reclaimFor(memMB int) bool {
	var free map[string]int
	if fr, ok := m.cfg.Placement.(FreeReporter); ok {
		free = fr.FreeMB()
	}
	m.mu.Lock()
	reclaimable := map[string]int{} // worker -> idle memory
	oldest := map[string]*sandbox{} // worker -> its least recently used idle sandbox
	for _, list := range m.idle {
		for _, sb := range list {
			if sb.provisioned {
				continue
			}
			reclaimable[sb.workerID] += sb.memMB
			if o := oldest[sb.workerID]; o == nil || sb.lastUsed.Before(o.lastUsed) {
				oldest[sb.workerID] = sb
			}
		}
	}
	var victim *sandbox
	for w, sb := range oldest {
		if free != nil && free[w]+reclaimable[w] < memMB {
			continue // reclaiming all of it would not make room here
		}
		if victim == nil {
			victim = sb
			continue
		}
		fw, fv := free[w], free[victim.workerID]
		if fw > fv || (fw == fv && (sb.lastUsed.Before(victim.lastUsed) ||
			(sb.lastUsed.Equal(victim.lastUsed) && w < victim.workerID))) {
			victim = sb
		}
	}
	if victim == nil {
		m.mu.Unlock()
		return false
	}
	pk := poolKey(victim.fn, victim.revision)
	list := m.idle[pk]
	for i, sb := range list {
		if sb == victim {
			m.idle[pk] = append(list[:i:i], list[i+1:]...)
			break
		}
	}
	if len(m.idle[pk]) == 0 {
		delete(m.idle, pk)
	}
	victim.transition(Draining)
	m.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := victim.worker.DestroySandbox(ctx, victim.id); err != nil {
		m.log.Warn("destroying a sandbox failed", "sandbox", victim.id, "err", err)
	}
	m.cfg.Placement.Free(victim.workerID, victim.memMB)
	m.mu.Lock()
	victim.transition(Dead)
	delete(m.sandboxes, victim.id)
	m.mu.Unlock()
	return true
}

// ReapIdle destroys idle sandboxes whose keep-alive has run out by now and returns
// how many it reclaimed.
func (m *Manager) ReapIdle(now time.Time) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for pk, list := range m.idle {
		keep := list[:0]
		for _, sb := range list {
			if !sb.provisioned && !now.Before(sb.expires) {
				sb.transition(Draining)
				m.destroyLocked(sb)
				n++
				continue
			}
			keep = append(keep, sb)
		}
		if len(keep) == 0 {
			delete(m.idle, pk)
		} else {
			m.idle[pk] = keep
		}
	}
	return n
}

// Run reclaims idle sandboxes past their keep-alive until ctx ends, then
// shuts the manager down.
func (m *Manager) Run(ctx context.Context) {
	period := m.cfg.KeepAlive / 10
	if period > 10*time.Second {
		period = 10 * time.Second
	}
	if period < 10*time.Millisecond {
		period = 10 * time.Millisecond
	}
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			m.Shutdown()
			return
		case <-t.C:
			now := m.cfg.Now()
			if n := m.ReapIdle(now); n > 0 {
				m.log.Debug("reclaimed idle sandboxes", "count", n)
			}
			m.startPrewarms(now)
			m.reconcileProvisioned(now)
			m.rounds.Add(1)
		}
	}
}

// Rounds is how many rounds of upkeep Run has finished: a caller that saw
// it move by two knows a whole round ran after its own change.
func (m *Manager) Rounds() uint64 { return m.rounds.Load() }

// Shutdown refuses new work, destroys every idle sandbox, lets busy ones be
// destroyed on release, and waits until every destroy has finished or the
// busy ones are gone.
func (m *Manager) Shutdown() {
	m.mu.Lock()
	m.closed = true
	for pk, list := range m.idle {
		for _, sb := range list {
			sb.transition(Draining)
			m.destroyLocked(sb)
		}
		delete(m.idle, pk)
	}
	m.mu.Unlock()
	m.wg.Wait()
}

// Counts is the number of sandboxes in each state.
func (m *Manager) Counts() map[State]int {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[State]int{}
	for _, sb := range m.sandboxes {
		out[sb.state]++
	}
	return out
}
