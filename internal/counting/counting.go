// Package counting is the Counting Service: the view of concurrency per
// account and per function. It grants or refuses a slot for each invoke
// (account limit, reserved concurrency) and a token for each new sandbox
// (the scaling rate), answering Lambda's 429s.
package counting

import (
	"context"
	"strconv"
	"sync"
	"time"

	"github.com/emberfn/ember/internal/lambdaapi"
)

// Config configures the service. Zero values take Lambda's defaults.
type Config struct {
	// AccountLimit is the concurrency limit of an account without one of
	// its own (default 1,000).
	AccountLimit int
	// ScaleBurst new sandboxes per function may be made per ScaleWindow,
	// refilled continuously (defaults 1,000 per 10 s).
	ScaleBurst  int
	ScaleWindow time.Duration
	// LeaseGrace is how long past its function's timeout a slot is held
	// before it is taken back from an invoke that never released it
	// (default 30 s).
	LeaseGrace time.Duration
	Now        func() time.Time
}

// Service counts concurrent invocations. Its counts live in memory and are
// rebuilt from nothing on start (DESIGN.md section 2); the reservations,
// provisioned concurrency and limits it applies are told to it
// (SetReserved, SetProvisioned, SetAccountLimit) from the durable
// configuration. The rule that an account keeps at least 100 unreserved
// is the control API's: it refuses a configuration that breaks it.
//
// Lambda's carve-out: a function with reserved concurrency R has R slots
// of the account's limit to itself and no more. A version with
// provisioned concurrency P has P slots to itself, which no other version
// of the function (nor any other function) can use; past P its invokes
// share what is left like its other versions' invokes: with a reservation,
// R less the provisioned concurrency of all its versions (so that a
// function whose versions' provisioned concurrency adds up to R cannot
// run $LATEST at all, as in Lambda); without one, the account's
// unreserved pool, which the provisioned concurrency is taken out of.
// Both are counted by amount (what a version holds beyond its P). Whatever
// the configuration does while slots are held, no slot is granted beyond
// the account's limit or a function's reservation.
//
// Lock order: mu only; nothing is called with it held.
type Service struct {
	cfg Config

	mu       sync.Mutex
	accounts map[string]*account
	leases   map[uint64]*Lease
	nextID   uint64
}

type account struct {
	limit    int // 0: the default
	inUse    int
	reserved map[string]int // function -> reservation
	// carved is what the reservations and the provisioned concurrency of
	// functions without a reservation take out of the limit.
	carved int
	// pool is the unreserved pool's use: over the functions without a
	// reservation, what each holds beyond its versions' provisioned
	// concurrency (spill). Counted by amount, not by slot: a version
	// within its provisioned concurrency uses none of the pool, whichever
	// of its slots ended first (Lambda counts spillover the same way).
	pool      int
	functions map[string]*function
}

type function struct {
	inUse int
	// provisioned is each version's provisioned concurrency, and
	// provisionedSum their sum; versionInUse the slots each of those
	// versions holds (SetProvisioned rebuilds it from the leases). Both
	// maps are nil for a function without provisioned concurrency.
	provisioned    map[string]int
	provisionedSum int
	versionInUse   map[string]int
	// spill is what the function holds beyond its versions' provisioned
	// concurrency: the sum over its versions of what each holds past its
	// own.
	spill  int
	tokens float64 // scaling budget
	last   time.Time
}

// Lease is a granted slot. It is given back by its release function, or
// taken back by Reap after its expiry.
type Lease struct {
	id       uint64
	account  string
	function string
	version  string
	expires  time.Time
	released bool
}

// New makes the service.
func New(cfg Config) *Service {
	if cfg.AccountLimit == 0 {
		cfg.AccountLimit = 1000
	}
	if cfg.ScaleBurst == 0 {
		cfg.ScaleBurst = 1000
	}
	if cfg.ScaleWindow == 0 {
		cfg.ScaleWindow = 10 * time.Second
	}
	if cfg.LeaseGrace == 0 {
		cfg.LeaseGrace = 30 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Service{cfg: cfg, accounts: map[string]*account{}, leases: map[uint64]*Lease{}}
}

func (s *Service) accountLocked(id string) *account {
	a, ok := s.accounts[id]
	if !ok {
		a = &account{reserved: map[string]int{}, functions: map[string]*function{}}
		s.accounts[id] = a
	}
	return a
}

func (a *account) function(name string) *function {
	f, ok := a.functions[name]
	if !ok {
		f = &function{tokens: -1}
		a.functions[name] = f
	}
	return f
}

func (s *Service) limitOf(a *account) int {
	if a.limit > 0 {
		return a.limit
	}
	return s.cfg.AccountLimit
}

func throttle(reason, msg string) *lambdaapi.Error {
	e := lambdaapi.Errorf(lambdaapi.TooManyRequests, "%s", msg)
	e.Reason = reason
	e.RetryAfterSeconds = "1"
	return e
}

// Acquire takes a slot for one invocation of version ("$LATEST" or a
// number) of function, held at most for timeout plus the grace, or answers
// Lambda's 429. The returned release gives it back; calling it again, or
// after Reap took it, does nothing.
//
// A slot is granted within the version's provisioned concurrency, else
// within what the function's reservation leaves past its versions'
// provisioned concurrency, or without a reservation within the unreserved
// pool; and never beyond the account's limit or the reservation, which a
// configuration changed while slots are held (a reservation removed or
// lowered, provisioned concurrency lowered) could otherwise let the
// carve-outs and the pool add up past.
func (s *Service) Acquire(_ context.Context, acct, fn, version string, timeout time.Duration) (release func(), err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.accountLocked(acct)
	f := a.function(fn)
	limit := s.limitOf(a)
	provisioned := f.provisionedSum > 0 && f.versionInUse[version] < f.provisioned[version]
	if r, ok := a.reserved[fn]; ok {
		if !provisioned && f.spill >= r-f.provisionedSum || f.inUse >= r || a.inUse >= limit {
			return nil, throttle(lambdaapi.ReasonReservedFunctionConcurrentInvocationLimit, "Rate Exceeded.")
		}
	} else if !provisioned && a.pool >= limit-a.carved || a.inUse >= limit {
		return nil, throttle(lambdaapi.ReasonConcurrentInvocationLimitExceeded, "Rate Exceeded.")
	}
	a.update(fn, f, func() { f.add(version, 1) })
	a.inUse++
	s.nextID++
	l := &Lease{id: s.nextID, account: acct, function: fn, version: version, expires: s.cfg.Now().Add(timeout + s.cfg.LeaseGrace)}
	s.leases[l.id] = l
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.releaseLocked(l)
	}, nil
}

// add counts n more slots (n may be negative) held by version.
func (f *function) add(version string, n int) {
	f.inUse += n
	if _, ok := f.provisioned[version]; ok {
		f.versionInUse[version] += n
	}
	f.recount()
}

// recount computes spill: every slot of a version without provisioned
// concurrency, and each provisioned version's slots past its own.
func (f *function) recount() {
	covered := 0
	for v, n := range f.versionInUse {
		covered += min(n, f.provisioned[v])
	}
	f.spill = f.inUse - covered
}

// update applies change to function fn (f), keeping its charge to the
// pool current.
func (a *account) update(fn string, f *function, change func()) {
	a.pool -= a.chargeOf(fn, f)
	change()
	a.pool += a.chargeOf(fn, f)
}

// configure applies a change of fn's configuration, keeping its
// carve-out and its charge to the pool current.
func (a *account) configure(fn string, f *function, change func()) {
	a.carved -= a.carveOf(fn, f)
	a.update(fn, f, change)
	a.carved += a.carveOf(fn, f)
}

// chargeOf is what function fn (f) takes of the unreserved pool: nothing
// with a reservation, else what it holds beyond its versions' provisioned
// concurrency.
func (a *account) chargeOf(fn string, f *function) int {
	if _, ok := a.reserved[fn]; ok {
		return 0
	}
	return f.spill
}

// carveOf is what fn takes out of the account's limit: its reservation,
// or without one its versions' provisioned concurrency.
func (a *account) carveOf(fn string, f *function) int {
	if r, ok := a.reserved[fn]; ok {
		return r
	}
	return f.provisionedSum
}

func (s *Service) releaseLocked(l *Lease) {
	if l == nil || l.released {
		return
	}
	l.released = true
	delete(s.leases, l.id)
	a := s.accountLocked(l.account)
	f := a.function(l.function)
	a.update(l.function, f, func() { f.add(l.version, -1) })
	a.inUse--
}

// Reap takes back the slots whose leases expired by now and returns how
// many.
func (s *Service) Reap(now time.Time) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, l := range s.leases {
		if now.After(l.expires) {
			s.releaseLocked(l)
			n++
		}
	}
	return n
}

// Run reaps expired leases until ctx ends.
func (s *Service) Run(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.Reap(s.cfg.Now())
		}
	}
}

// AllowNewSandbox takes one token of the function's scaling budget: at
// most ScaleBurst new sandboxes per ScaleWindow, refilled continuously and
// never banked beyond ScaleBurst.
func (s *Service) AllowNewSandbox(acct, fn string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.accountLocked(acct)
	f := a.function(fn)
	now := s.cfg.Now()
	burst := float64(s.cfg.ScaleBurst)
	if f.tokens < 0 {
		f.tokens = burst
	} else {
		f.tokens += now.Sub(f.last).Seconds() * burst / s.cfg.ScaleWindow.Seconds()
		if f.tokens > burst {
			f.tokens = burst
		}
	}
	f.last = now
	if f.tokens < 1 {
		reason := lambdaapi.ReasonFunctionInvocationRateLimitExceeded
		if _, ok := a.reserved[fn]; ok {
			reason = lambdaapi.ReasonReservedFunctionInvocationRateLimit
		}
		e := throttle(reason, "Rate Exceeded.")
		wait := (1 - f.tokens) * s.cfg.ScaleWindow.Seconds() / burst
		e.RetryAfterSeconds = strconv.Itoa(int(wait) + 1)
		return e
	}
	f.tokens--
	return nil
}

// SetReserved records a function's reserved concurrency (nil: none).
func (s *Service) SetReserved(acct, fn string, n *int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.accountLocked(acct)
	a.configure(fn, a.function(fn), func() {
		delete(a.reserved, fn)
		if n != nil {
			a.reserved[fn] = *n
		}
	})
}

// SetProvisioned records the provisioned concurrency of each version of a
// function (version -> count, an alias's counted on the version it routes
// to; none: nil). It replaces what was recorded before.
func (s *Service) SetProvisioned(acct, fn string, versions map[string]int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.accountLocked(acct)
	f := a.function(fn)
	a.configure(fn, f, func() {
		f.provisioned, f.versionInUse, f.provisionedSum = nil, nil, 0
		for v, n := range versions {
			if n > 0 {
				if f.provisioned == nil {
					f.provisioned, f.versionInUse = map[string]int{}, map[string]int{}
				}
				f.provisioned[v] = n
				f.provisionedSum += n
			}
		}
		// The slots held now count against the new figures. A scan of
		// every lease, on a configuration change only.
		for _, l := range s.leases {
			if _, ok := f.provisioned[l.version]; ok && l.account == acct && l.function == fn {
				f.versionInUse[l.version]++
			}
		}
		f.recount()
	})
}

// SetAccountLimit sets an account's own concurrency limit (0: default).
func (s *Service) SetAccountLimit(acct string, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.accountLocked(acct).limit = n
}

// Usage is an account's view: its limit, what reservations and
// provisioned concurrency leave to the other functions, and the slots held
// now.
type Usage struct {
	Limit      int
	Unreserved int
	InUse      int
}

// AccountUsage reports an account's limit and use.
func (s *Service) AccountUsage(acct string) Usage {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.accountLocked(acct)
	l := s.limitOf(a)
	return Usage{Limit: l, Unreserved: l - a.carved, InUse: a.inUse}
}

// FunctionInUse is the number of slots a function holds.
func (s *Service) FunctionInUse(acct, fn string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.accountLocked(acct).function(fn).inUse
}
