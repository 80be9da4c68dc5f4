// Package metrics is Ember's Prometheus instrumentation: invocations,
// function errors, throttles, durations, cold starts, concurrency,
// sandboxes and worker capacity, on a registry of its own, served at
// GET /metrics. docs/metrics.md describes every metric.
//
// Labels naming functions and accounts are bounded: at most
// Config.MaxFunctions distinct (account, function) pairs get series of
// their own; the others are counted under function="_other".
package metrics

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Outcomes of an invocation, the values of the outcome label.
const (
	Success       = "success"
	FunctionError = "function_error" // the function failed: an error, a crash, out of memory, init failure
	Timeout       = "timeout"        // the function ran past its timeout
	PlatformError = "platform_error" // Ember could not run it (5xx)
	Throttled     = "throttled"      // refused with 429: counted in throttles, not invocations
)

// Other is the label value standing for the values beyond a cap.
const Other = "_other"

// Config configures the metrics. Every callback is optional and is called
// at each scrape.
type Config struct {
	// MaxFunctions bounds the distinct (account, function) label pairs
	// (default 1,000); beyond, function="_other" (and account="_other"
	// for an account not seen yet).
	MaxFunctions int
	// Sandboxes reports the sandboxes of each worker by state (starting,
	// idle, busy, draining).
	Sandboxes func(report func(worker, state string, n int))
	// Workers reports each worker's memory offered to sandboxes and
	// reserved by them.
	Workers func(report func(worker, zone string, capacityMB, reservedMB int))
	// Logs reports the function log writer's counts of events stored,
	// lost (buffer full, store failed) and cut (over the per-invocation
	// limit).
	Logs func() (stored, lost, cut uint64)
	// Async reports the asynchronous event queue: events queued or in
	// flight, the age of the oldest, and the counts of accepted, retried
	// and dropped events.
	Async func() (depth uint64, oldestAge time.Duration, accepted, retries, dropped uint64)
	// AsyncPollers reports how many asynchronous events this node's
	// pollers may invoke at once now (their adaptive limit) and how many
	// they invoke.
	AsyncPollers func() (limit, running int)
}

// Metrics holds Ember's metrics. Its methods are safe for concurrent use
// and never block on anything but a short lock.
type Metrics struct {
	cfg Config
	reg *prometheus.Registry
	lab *labeler

	invocations  *prometheus.CounterVec
	errors       *prometheus.CounterVec
	throttles    *prometheus.CounterVec
	duration     *prometheus.HistogramVec
	initDuration *prometheus.HistogramVec
	coldStarts   *prometheus.CounterVec
	concurrent   *prometheus.GaugeVec

	// Each function's series, bound once (WithLabelValues hashes its
	// labels on every call): byPair by the (account, function) a caller
	// names, only for pairs that have series of their own (at most
	// MaxFunctions); byLabels by the labels given, "_other" included.
	smu      sync.RWMutex
	byPair   map[[2]string]*fnSeries
	byLabels map[[2]string]*fnSeries
}

// fnSeries is one (account, function) label pair's series. Each is bound
// when first used, so that /metrics shows only series that moved (as
// WithLabelValues at each use did).
type fnSeries struct {
	account, function string // the labels
	concurrent        prometheus.Gauge
	errors            bound[prometheus.Counter]
	duration          bound[prometheus.Observer]
	initDuration      bound[prometheus.Observer]
	coldStarts        bound[prometheus.Counter]
	outcomes          [5]bound[prometheus.Counter] // by outcomeIndex
}

// bound is a child of a metric vector, bound on first use. Binding twice
// (a race) is harmless: WithLabelValues returns the same child.
type bound[T any] struct{ p atomic.Pointer[T] }

func (b *bound[T]) get(bind func() T) T {
	if p := b.p.Load(); p != nil {
		return *p
	}
	v := bind()
	b.p.Store(&v)
	return v
}

// outcome is the invocations counter of one outcome.
func (m *Metrics) outcome(s *fnSeries, outcome string) prometheus.Counter {
	i := outcomeIndex(outcome)
	if i < 0 {
		i, outcome = len(s.outcomes)-1, Other
	}
	return s.outcomes[i].get(func() prometheus.Counter { return m.invocations.WithLabelValues(s.account, s.function, outcome) })
}

// outcomeIndex is where an outcome's counter is in fnSeries.outcomes
// (-1: none of them; the last is Other's).
func outcomeIndex(outcome string) int {
	switch outcome {
	case Success:
		return 0
	case FunctionError:
		return 1
	case Timeout:
		return 2
	case PlatformError:
		return 3
	}
	return -1
}

// series returns the series of a function, binding them the first time.
func (m *Metrics) series(account, function string) *fnSeries {
	k := [2]string{account, function}
	m.smu.RLock()
	s := m.byPair[k]
	m.smu.RUnlock()
	if s != nil {
		return s
	}
	a, f := m.lab.pair(account, function)
	m.smu.Lock()
	defer m.smu.Unlock()
	lk := [2]string{a, f}
	if s = m.byLabels[lk]; s == nil {
		s = &fnSeries{account: a, function: f, concurrent: m.concurrent.WithLabelValues(a, f)}
		m.byLabels[lk] = s
	}
	if lk == k {
		// Labels of its own (the labeler never changes them): looked up
		// directly from now on. Pairs beyond the cap are not kept here,
		// so this map stays bounded.
		m.byPair[k] = s
	}
	return s
}

// Buckets of the duration histograms, in seconds: Lambda's range from a
// millisecond to 15 minutes.
var (
	invokeBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900}
	initBuckets   = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}
)

// New makes the metrics on a registry of their own, with the Go runtime's
// and the process's metrics beside Ember's.
func New(cfg Config) *Metrics {
	if cfg.MaxFunctions <= 0 {
		cfg.MaxFunctions = 1000
	}
	fn := []string{"account", "function"}
	m := &Metrics{
		cfg:      cfg,
		reg:      prometheus.NewRegistry(),
		lab:      newLabeler(cfg.MaxFunctions),
		byPair:   map[[2]string]*fnSeries{},
		byLabels: map[[2]string]*fnSeries{},
		invocations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ember_invocations_total",
			Help: "Invocations that ran or were attempted, by outcome (success, function_error, timeout, platform_error); throttled requests are not counted.",
		}, []string{"account", "function", "outcome"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ember_function_errors_total",
			Help: "Invocations that ended in a function error (outcomes function_error and timeout), as Lambda's Errors metric.",
		}, fn),
		throttles: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ember_throttles_total",
			Help: "Invoke requests refused with 429 TooManyRequestsException, by Lambda's Reason.",
		}, []string{"account", "function", "reason"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "ember_invoke_duration_seconds",
			Help:    "Time functions ran per invocation (the REPORT line's Duration), init excluded.",
			Buckets: invokeBuckets,
		}, fn),
		initDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "ember_init_duration_seconds",
			Help:    "Time a new sandbox took from creation to its runtime's first /next (the REPORT line's Init Duration).",
			Buckets: initBuckets,
		}, fn),
		coldStarts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ember_cold_starts_total",
			Help: "Invocations that had a new sandbox made for them (including ones whose init failed).",
		}, fn),
		concurrent: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "ember_concurrent_executions",
			Help: "Invocations in flight (holding a concurrency slot).",
		}, fn),
	}
	m.reg.MustRegister(m.invocations, m.errors, m.throttles, m.duration, m.initDuration, m.coldStarts, m.concurrent,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		&callbacks{cfg: cfg})
	return m
}

// Registry is the registry the metrics are on, for a caller that adds its own.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// InvokeStarted counts an invocation in flight; call it once the
// invocation has its concurrency slot, and InvokeDone when it ends.
func (m *Metrics) InvokeStarted(account, function string) {
	m.series(account, function).concurrent.Inc()
}

// InvokeDone ends an invocation that InvokeStarted counted. outcome is one
// of Success, FunctionError, Timeout, PlatformError or Throttled (a 429
// met after the slot was granted, e.g. no worker had room: Throttled must
// then have been called too). duration is how long the function ran (0 if
// it did not).
func (m *Metrics) InvokeDone(account, function, outcome string, duration time.Duration) {
	s := m.series(account, function)
	s.concurrent.Dec()
	if outcome == Throttled {
		return
	}
	if outcome == FunctionError || outcome == Timeout {
		s.errors.get(func() prometheus.Counter { return m.errors.WithLabelValues(s.account, s.function) }).Inc()
	}
	m.outcome(s, outcome).Inc()
	if duration > 0 {
		s.duration.get(func() prometheus.Observer { return m.duration.WithLabelValues(s.account, s.function) }).
			Observe(duration.Seconds())
	}
}

// ColdStart counts an invocation that had a sandbox made for it, and how
// long that sandbox's init took (0 if unknown, e.g. it failed).
func (m *Metrics) ColdStart(account, function string, initDuration time.Duration) {
	s := m.series(account, function)
	s.coldStarts.get(func() prometheus.Counter { return m.coldStarts.WithLabelValues(s.account, s.function) }).Inc()
	if initDuration > 0 {
		s.initDuration.get(func() prometheus.Observer { return m.initDuration.WithLabelValues(s.account, s.function) }).
			Observe(initDuration.Seconds())
	}
}

// Throttled counts an invoke refused with 429; reason is Lambda's Reason
// ("" if the error had none).
func (m *Metrics) Throttled(account, function, reason string) {
	a, f := m.lab.pair(account, function)
	m.throttles.WithLabelValues(a, f, m.lab.reason(reason)).Inc()
}

// callbacks turns Config's callbacks into metrics at each scrape.
type callbacks struct{ cfg Config }

var (
	sandboxesDesc = prometheus.NewDesc("ember_sandboxes",
		"Sandboxes by worker and state (starting, idle, busy, draining).", []string{"worker", "state"}, nil)
	capacityDesc = prometheus.NewDesc("ember_worker_memory_capacity_bytes",
		"Memory a worker offers to sandboxes.", []string{"worker", "zone"}, nil)
	reservedDesc = prometheus.NewDesc("ember_worker_memory_reserved_bytes",
		"Memory reserved on a worker by its sandboxes (their functions' memory sizes).", []string{"worker", "zone"}, nil)
	logStoredDesc = prometheus.NewDesc("ember_log_events_stored_total",
		"Function log events stored in the log stream.", nil, nil)
	logLostDesc = prometheus.NewDesc("ember_log_events_lost_total",
		"Function log events lost: the log buffer was full or the store failed (each loss is also reported in the log stream).", nil, nil)
	logCutDesc = prometheus.NewDesc("ember_log_events_cut_total",
		"Function output lines dropped because an invocation wrote more than the per-invocation limit (reported in the log stream).", nil, nil)
	asyncDepthDesc = prometheus.NewDesc("ember_async_queue_depth",
		"Asynchronous events queued or being run.", nil, nil)
	asyncAgeDesc = prometheus.NewDesc("ember_async_oldest_event_age_seconds",
		"Age of the oldest queued asynchronous event (0 when none).", nil, nil)
	asyncAcceptedDesc = prometheus.NewDesc("ember_async_events_accepted_total",
		"Asynchronous events accepted (answered 202).", nil, nil)
	asyncRetriesDesc = prometheus.NewDesc("ember_async_retries_total",
		"Retries of asynchronous events (function errors, throttles, platform errors).", nil, nil)
	asyncDroppedDesc = prometheus.NewDesc("ember_async_events_dropped_total",
		"Asynchronous events that expired or ran out of retries without an on-failure destination.", nil, nil)
	asyncLimitDesc = prometheus.NewDesc("ember_async_pollers_limit",
		"How many asynchronous events this node's pollers may invoke at once now (adaptive).", nil, nil)
	asyncRunningDesc = prometheus.NewDesc("ember_async_pollers_running",
		"Asynchronous events this node's pollers are invoking (or waiting to invoke: holding a place).", nil, nil)
)

func (c *callbacks) Describe(ch chan<- *prometheus.Desc) {
	if c.cfg.Sandboxes != nil {
		ch <- sandboxesDesc
	}
	if c.cfg.Workers != nil {
		ch <- capacityDesc
		ch <- reservedDesc
	}
	if c.cfg.Logs != nil {
		ch <- logStoredDesc
		ch <- logLostDesc
		ch <- logCutDesc
	}
	if c.cfg.Async != nil {
		ch <- asyncDepthDesc
		ch <- asyncAgeDesc
		ch <- asyncAcceptedDesc
		ch <- asyncRetriesDesc
		ch <- asyncDroppedDesc
	}
	if c.cfg.AsyncPollers != nil {
		ch <- asyncLimitDesc
		ch <- asyncRunningDesc
	}
}

func (c *callbacks) Collect(ch chan<- prometheus.Metric) {
	if c.cfg.Sandboxes != nil {
		seen := map[[2]string]int{}
		c.cfg.Sandboxes(func(worker, state string, n int) { seen[[2]string{worker, state}] += n })
		for k, n := range seen {
			ch <- prometheus.MustNewConstMetric(sandboxesDesc, prometheus.GaugeValue, float64(n), k[0], k[1])
		}
	}
	if c.cfg.Workers != nil {
		c.cfg.Workers(func(worker, zone string, capacityMB, reservedMB int) {
			ch <- prometheus.MustNewConstMetric(capacityDesc, prometheus.GaugeValue, float64(capacityMB)*(1<<20), worker, zone)
			ch <- prometheus.MustNewConstMetric(reservedDesc, prometheus.GaugeValue, float64(reservedMB)*(1<<20), worker, zone)
		})
	}
	if c.cfg.Logs != nil {
		stored, lost, cut := c.cfg.Logs()
		ch <- prometheus.MustNewConstMetric(logStoredDesc, prometheus.CounterValue, float64(stored))
		ch <- prometheus.MustNewConstMetric(logLostDesc, prometheus.CounterValue, float64(lost))
		ch <- prometheus.MustNewConstMetric(logCutDesc, prometheus.CounterValue, float64(cut))
	}
	if c.cfg.Async != nil {
		depth, age, accepted, retries, dropped := c.cfg.Async()
		ch <- prometheus.MustNewConstMetric(asyncDepthDesc, prometheus.GaugeValue, float64(depth))
		ch <- prometheus.MustNewConstMetric(asyncAgeDesc, prometheus.GaugeValue, age.Seconds())
		ch <- prometheus.MustNewConstMetric(asyncAcceptedDesc, prometheus.CounterValue, float64(accepted))
		ch <- prometheus.MustNewConstMetric(asyncRetriesDesc, prometheus.CounterValue, float64(retries))
		ch <- prometheus.MustNewConstMetric(asyncDroppedDesc, prometheus.CounterValue, float64(dropped))
	}
	if c.cfg.AsyncPollers != nil {
		limit, running := c.cfg.AsyncPollers()
		ch <- prometheus.MustNewConstMetric(asyncLimitDesc, prometheus.GaugeValue, float64(limit))
		ch <- prometheus.MustNewConstMetric(asyncRunningDesc, prometheus.GaugeValue, float64(running))
	}
}

// labeler bounds label values.
type labeler struct {
	max int

	mu       sync.Mutex
	pairs    map[[2]string]bool
	accounts map[string]bool
	reasons  map[string]bool
}

// maxReasons bounds the distinct reason label values.
const maxReasons = 32

func newLabeler(max int) *labeler {
	return &labeler{max: max, pairs: map[[2]string]bool{}, accounts: map[string]bool{}, reasons: map[string]bool{}}
}

// pair is the (account, function) labels for a function: itself while
// fewer than max pairs were seen, else function "_other" of its account
// (or of "_other" for an account not seen before the cap was reached).
// A pair's labels never change once given.
func (l *labeler) pair(account, function string) (string, string) {
	k := [2]string{account, function}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.pairs[k] {
		return account, function
	}
	if len(l.pairs) < l.max {
		l.pairs[k] = true
		l.accounts[account] = true
		return account, function
	}
	if l.accounts[account] {
		return account, Other
	}
	return Other, Other
}

// reason bounds throttle reasons: Lambda's names are identifiers.
func (l *labeler) reason(r string) string {
	if r == "" {
		return "unspecified"
	}
	if len(r) > 64 {
		return Other
	}
	for _, c := range r {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			return Other
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.reasons[r] {
		return r
	}
	if len(l.reasons) >= maxReasons {
		return Other
	}
	l.reasons[r] = true
	return r
}
