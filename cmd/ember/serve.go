package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/emberfn/ember/internal/async"
	"github.com/emberfn/ember/internal/auth"
	"github.com/emberfn/ember/internal/controlapi"
	"github.com/emberfn/ember/internal/counting"
	"github.com/emberfn/ember/internal/frontend"
	"github.com/emberfn/ember/internal/lambdaapi"
	"github.com/emberfn/ember/internal/logs"
	"github.com/emberfn/ember/internal/metrics"
	"github.com/emberfn/ember/internal/natsd"
	"github.com/emberfn/ember/internal/placement"
	"github.com/emberfn/ember/internal/runtimes"
	"github.com/emberfn/ember/internal/sandbox"
	"github.com/emberfn/ember/internal/store"
	"github.com/emberfn/ember/internal/worker"
	"github.com/emberfn/ember/internal/workermanager"
)

// serveConfig is everything `ember serve` is told.
type serveConfig struct {
	Listen  string
	DataDir string
	NATSURL string // empty: embedded NATS under DataDir
	Region  string
	// ControlRate and ControlBurst limit control-plane calls per account.
	ControlRate  float64
	ControlBurst int
	// WorkerMemoryMB is the memory the local worker offers to sandboxes
	// (default: three quarters of the host's memory).
	WorkerMemoryMB int
	// KeepAlive is how long idle sandboxes stay warm (default 10 min); with
	// the hybrid policy it is the fallback while a function's histogram
	// says nothing yet.
	KeepAlive time.Duration
	// Sandbox is the sandbox backend: "native" (default) or "process"
	// (no isolation, development without root).
	Sandbox string
	// KeepAlivePolicy is "hybrid" (default) or "fixed".
	KeepAlivePolicy string
	// InitTimeout bounds a runtime's init (default 10 s).
	InitTimeout time.Duration
	// CPUCap caps each sandbox's CPU in proportion to its memory, as
	// Lambda does (worker.Config.CPUCap).
	CPUCap bool
	// SandboxPool is how many sandbox inits are kept started ahead on
	// cgroup v1 hosts (sandbox.Config.InitPool).
	SandboxPool int
	// AccountConcurrency is the concurrency limit of accounts without
	// their own (1,000).
	AccountConcurrency int
	// ScaleBurst is how many new sandboxes a function may get per 10 s
	// (1,000).
	ScaleBurst int
	// LogMaxBytes and LogMaxAge bound the stored function logs (1 GiB,
	// 7 days); the oldest go first.
	LogMaxBytes int64
	LogMaxAge   time.Duration
	// LogInvocationBytes bounds the output one invocation keeps in the
	// durable log (1 MiB); the rest is dropped and the loss reported.
	LogInvocationBytes int
	// MetricsToken, if set, is the bearer token GET /metrics requires;
	// without one, /metrics answers loopback clients only.
	MetricsToken string
	// Ready, if set, is called with the listening address once /healthz
	// answers 200.
	Ready func(addr string)
	Log   *slog.Logger
	// onStore, for tests, receives the store once it is open.
	onStore func(*store.Store)
	// onDataPlane, for tests, receives the worker manager and the worker.
	onDataPlane func(*workermanager.Manager, *worker.Worker)
	// onCounting, for tests, receives the Counting Service.
	onCounting func(*counting.Service)
	// minUnreserved, for tests, is what reservations and provisioned
	// concurrency must leave unreserved (Lambda's 100), so that small
	// limits can be tested.
	minUnreserved int
}

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg := serveConfig{}
	fs.StringVar(&cfg.Listen, "listen", "127.0.0.1:9070", "address of the Lambda API")
	fs.StringVar(&cfg.DataDir, "data-dir", defaultDataDir(), "directory for state, keys and credentials")
	fs.StringVar(&cfg.NATSURL, "nats", "", "external NATS server URL (default: embedded NATS under the data dir)")
	fs.StringVar(&cfg.Region, "region", "us-east-1", "region in ARNs and SigV4 scopes")
	fs.Float64Var(&cfg.ControlRate, "control-rate", 50, "control-plane requests per second per account")
	fs.IntVar(&cfg.ControlBurst, "control-burst", 100, "control-plane request burst per account")
	fs.IntVar(&cfg.WorkerMemoryMB, "worker-memory", 0, "MB the local worker offers to sandboxes (default 3/4 of the host's memory)")
	fs.DurationVar(&cfg.KeepAlive, "keep-alive", 10*time.Minute, "how long idle sandboxes stay warm (the hybrid policy's fallback)")
	fs.StringVar(&cfg.Sandbox, "sandbox", "native", "sandbox backend: native, or process (no isolation; development without root)")
	fs.IntVar(&cfg.SandboxPool, "sandbox-pool", 2, "sandbox inits kept started ahead on cgroup v1 hosts (their cgroup attach, a wait of 5-15 ms, off the cold start); 0: none")
	fs.BoolVar(&cfg.CPUCap, "cpu-cap", false, "cap each sandbox's CPU in proportion to its memory as Lambda does (1,769 MB = one CPU); without it the share is a weight")
	fs.StringVar(&cfg.KeepAlivePolicy, "keep-alive-policy", "hybrid", "hybrid (learns each function's idle times, pre-warms) or fixed")
	fs.IntVar(&cfg.AccountConcurrency, "account-concurrency", 1000, "concurrency limit of accounts without their own")
	fs.IntVar(&cfg.ScaleBurst, "scale-burst", 1000, "new sandboxes per function per 10 s")
	fs.Int64Var(&cfg.LogMaxBytes, "log-retention-bytes", logs.DefaultMaxBytes, "bytes of function logs kept (oldest removed first)")
	fs.DurationVar(&cfg.LogMaxAge, "log-retention", logs.DefaultMaxAge, "how long function logs are kept")
	fs.IntVar(&cfg.LogInvocationBytes, "log-invocation-bytes", 1<<20, "output of one invocation kept in the function log")
	metricsTokenFile := fs.String("metrics-token-file", "", "file holding the bearer token GET /metrics requires (default: /metrics for loopback clients only)")
	logFormat := fs.String("log-format", "text", "log format: text or json")
	logLevel := fs.String("log-level", "info", "log level: debug (with each cold start's steps timed), info, warn or error")
	pprofAddr := fs.String("pprof", "", "serve Go's profiles (net/http/pprof) on this address, e.g. 127.0.0.1:6060 (default: off)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := checkLogFormat(*logFormat); err != nil {
		return err
	}
	if *metricsTokenFile != "" {
		b, err := os.ReadFile(*metricsTokenFile)
		if err != nil {
			return fmt.Errorf("metrics token: %w", err)
		}
		if cfg.MetricsToken = strings.TrimSpace(string(b)); cfg.MetricsToken == "" {
			return fmt.Errorf("metrics token: %s is empty", *metricsTokenFile)
		}
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	var h slog.Handler = slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level})
	if *logFormat == "json" {
		h = slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: level})
	}
	cfg.Log = slog.New(ctxHandler{h})
	if *pprofAddr != "" {
		stop, err := startPprof(*pprofAddr, cfg.Log)
		if err != nil {
			return err
		}
		defer stop()
	}
	cfg.Ready = func(addr string) {
		fmt.Fprintf(stdout, "ember: serving the Lambda API on http://%s\n", addr)
	}
	return serve(ctx, cfg, stdout)
}

// serve runs every component of the all-in-one shape until ctx ends, then
// shuts down: in-flight requests finish, NATS is flushed and stopped.
func serve(ctx context.Context, cfg serveConfig, stdout io.Writer) (err error) {
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return err
	}
	// Until the platform is ready, every request answers 503.
	var app atomic.Pointer[http.Handler]
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if h := app.Load(); h != nil {
				(*h).ServeHTTP(w, r)
				return
			}
			// Lambda's error shape, with a request id; 503 is what the
			// AWS SDKs retry.
			h := w.Header()
			h.Set("X-Amzn-RequestId", lambdaapi.NewRequestID())
			h.Set("X-Amzn-ErrorType", lambdaapi.Service)
			h.Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusServiceUnavailable)
			io.WriteString(w, `{"Type":"Service","message":"Ember is starting; try again shortly."}`)
		}),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	var bg sync.WaitGroup // owns the background goroutines below
	bgCtx, stopBG := context.WithCancel(context.Background())
	var nc *nats.Conn
	var ns *natsd.Server
	var stopDataPlane func()
	ncClosed := make(chan struct{})
	onClosed := nats.ClosedHandler(func(*nats.Conn) { close(ncClosed) })
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if e := srv.Shutdown(sctx); e != nil && err == nil {
			err = e
		}
		<-serveErr
		stopBG()
		bg.Wait()
		if stopDataPlane != nil {
			stopDataPlane()
		}
		if nc != nil {
			// Drain flushes what is pending; the closed handler says when.
			if nc.Drain() == nil {
				select {
				case <-ncClosed:
				case <-time.After(10 * time.Second):
				}
			}
			nc.Close()
		}
		if ns != nil {
			ns.Shutdown()
		}
		log.Info("stopped")
	}()

	sealer, err := auth.LoadOrCreateSealer(filepath.Join(cfg.DataDir, "keys", "master.key"))
	if err != nil {
		return err
	}
	if cfg.NATSURL == "" {
		ns, err = natsd.Start(natsd.Config{
			StoreDir:       filepath.Join(cfg.DataDir, "nats"),
			SyncEveryWrite: true,
			Logger:         log.With("component", "natsd"),
		})
		if err != nil {
			return err
		}
		nc, err = ns.Connect(onClosed)
	} else {
		nc, err = nats.Connect(cfg.NATSURL, nats.Name("ember"), nats.MaxReconnects(-1), onClosed)
	}
	if err != nil {
		return fmt.Errorf("nats: %w", err)
	}
	st, err := store.Open(ctx, nc, store.Config{})
	if err != nil {
		return err
	}
	if cfg.onStore != nil {
		cfg.onStore(st)
	}
	accounts := auth.NewAccounts(auth.AccountsConfig{Store: st, Sealer: sealer, Logger: log})
	bg.Add(1)
	go func() {
		defer bg.Done()
		if err := accounts.Run(bgCtx); err != nil {
			log.Error("access key watch ended", "err", err)
		}
	}()
	if err := accounts.WaitReady(ctx); err != nil {
		return err
	}
	if err := bootstrap(ctx, st, accounts, cfg.DataDir, stdout, log); err != nil {
		return err
	}

	verifier := auth.NewVerifier(auth.VerifierConfig{Region: cfg.Region, Keys: accounts})

	// Function logs: durable in JetStream, served as CloudWatch Logs.
	logStore, err := logs.Open(ctx, nc, logs.Config{MaxBytes: cfg.LogMaxBytes, MaxAge: cfg.LogMaxAge})
	if err != nil {
		return err
	}

	// The data plane: one local worker, placement, the worker manager,
	// counting and the Front End, wired in-process.
	sbCfg := sandbox.Config{Logger: log, InitPool: cfg.SandboxPool, MountTargets: worker.MountTargets}
	switch cfg.Sandbox {
	case "", "native":
	case "process":
		// Development only, where the native backend cannot run: no
		// isolation at all, so one account only.
		if os.Geteuid() == 0 {
			return errors.New("--sandbox=process is for machines where the native sandbox cannot run (not root); as root use the native one")
		}
		if as, err := st.Accounts(ctx); err != nil {
			return err
		} else if len(as) > 1 {
			return errors.New("--sandbox=process gives no isolation between tenants and refuses an installation with more than one account")
		}
		fmt.Fprintln(stdout, sandbox.ProcessBackendWarning)
		sbCfg.Backend = sandbox.BackendProcess
		accounts.Freeze("--sandbox=process runs one account only")
	default:
		return fmt.Errorf("--sandbox %q: want native or process", cfg.Sandbox)
	}
	sandboxes, err := sandbox.NewManager(sbCfg)
	if err != nil {
		return fmt.Errorf("sandboxes: %w (the native sandbox needs root; --sandbox=process runs without isolation for development)", err)
	}
	removeStaleWorkerDirs(cfg.DataDir, log)
	workerDir, err := os.MkdirTemp(cfg.DataDir, "worker-"+strconv.Itoa(os.Getpid())+"-")
	if err != nil {
		return err
	}
	var manager *workermanager.Manager
	runtimeDir, err := runtimes.Install(filepath.Join(workerDir, "runtime"))
	if err != nil {
		return err
	}
	// Closed in stopDataPlane, once the sandboxes' last lines are read;
	// no error return may come between here and stopDataPlane.
	logWriter := logs.NewWriter(logs.WriterConfig{Store: logStore, MaxInvocationBytes: cfg.LogInvocationBytes, Logger: log})
	local := worker.New(worker.Config{
		OpenLog: func(account, group, stream string) worker.LogStream {
			return logWriter.Open(account, group, stream)
		},
		ID: "local", Code: st, Sandboxes: sandboxes, Dir: workerDir, RuntimeDir: runtimeDir, Region: cfg.Region,
		InitTimeout: cfg.InitTimeout, CPUCap: cfg.CPUCap, Logger: log,
		OnSandboxExit: func(id string) { manager.SandboxExited(id) },
	})
	places := placement.New()
	places.Register(placement.Worker{ID: "local", Zone: "local", MemoryMB: workerMemory(cfg.WorkerMemoryMB)})
	var policy workermanager.Policy = workermanager.FixedPolicy{KeepAlive: cfg.KeepAlive}
	switch cfg.KeepAlivePolicy {
	case "", "hybrid":
		hc := workermanager.DefaultHybridConfig()
		if cfg.KeepAlive > 0 {
			hc.Fallback = cfg.KeepAlive
		}
		if policy, err = workermanager.NewHybridPolicy(hc); err != nil {
			return err
		}
	case "fixed":
	default:
		return fmt.Errorf("--keep-alive-policy %q: want hybrid or fixed", cfg.KeepAlivePolicy)
	}
	counter := counting.New(counting.Config{AccountLimit: cfg.AccountConcurrency, ScaleBurst: cfg.ScaleBurst})
	if cfg.onCounting != nil {
		cfg.onCounting(counter)
	}
	manager = workermanager.New(workermanager.Config{
		Placement: places,
		Scaler:    counter,
		Workers: func(id string) (workermanager.Worker, bool) {
			return local, id == "local"
		},
		KeepAlive: cfg.KeepAlive, Policy: policy, Logger: log,
	})
	if cfg.onDataPlane != nil {
		cfg.onDataPlane(manager, local)
	}
	var asyncQueue *async.Queue // opened below; the metrics ask it when scraped
	mets := metrics.New(metrics.Config{
		Async: func() (uint64, time.Duration, uint64, uint64, uint64) {
			if asyncQueue == nil {
				return 0, 0, 0, 0, 0
			}
			var age time.Duration
			depth, oldest, err := asyncQueue.Depth(context.Background())
			if err == nil && depth > 0 && !oldest.IsZero() {
				age = time.Since(oldest)
			}
			st := asyncQueue.Stats()
			// Retries count function-error retries and throttled attempts.
			return depth, age, st.Accepted, st.Retries + st.Throttled, st.Dropped
		},
		AsyncPollers: func() (int, int) {
			if asyncQueue == nil {
				return 0, 0
			}
			return asyncQueue.Pollers()
		},
		Sandboxes: func(report func(worker, state string, n int)) {
			counts := manager.Counts()
			for _, state := range []workermanager.State{workermanager.Starting, workermanager.Idle, workermanager.Busy, workermanager.Draining} {
				report("local", state.String(), counts[state])
			}
		},
		Workers: func(report func(worker, zone string, capacityMB, reservedMB int)) {
			for _, u := range places.Workers() {
				report(u.ID, u.Zone, u.MemoryMB, u.UsedMB)
			}
		},
		Logs: func() (stored, lost, cut uint64) {
			s := logWriter.Stats()
			return s.Stored, s.Lost, s.Cut
		},
	})
	front := frontend.New(frontend.Config{
		Auth: verifier, Counter: counter,
		Pool: manager, Functions: st, Region: cfg.Region, Logger: log,
		Metrics: mets,
	})
	// stopDataPlane runs after the HTTP server and the background
	// goroutines have stopped: no invoke is in flight any more.
	stopDataPlane = func() {
		manager.Shutdown()
		sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if e := local.Shutdown(sctx); e != nil {
			log.Warn("worker shutdown", "err", e)
		}
		if e := logWriter.Close(sctx); e != nil {
			log.Warn("function log writer shutdown", "err", e)
		}
		if e := sandboxes.Shutdown(sctx); e != nil {
			log.Warn("sandbox manager shutdown", "err", e)
		}
		os.RemoveAll(workerDir)
	}
	bg.Add(5)
	go func() {
		defer bg.Done()
		manager.Run(bgCtx)
	}()
	go func() {
		defer bg.Done()
		counter.Run(bgCtx)
	}()
	// The Counting Service learns reservations and account limits from
	// the durable configuration.
	go func() {
		defer bg.Done()
		err := st.WatchFunctions(bgCtx, true, func(account, name string, f *store.Function) {
			var n *int
			if f != nil {
				n = f.ReservedConcurrency
			}
			counter.SetReserved(account, name, n)
		})
		if err != nil {
			log.Error("reservation watch ended", "err", err)
		}
	}()
	go func() {
		defer bg.Done()
		if err := st.WatchAccounts(bgCtx, func(a store.Account) { counter.SetAccountLimit(a.ID, a.ConcurrencyLimit) }); err != nil {
			log.Error("account watch ended", "err", err)
		}
	}()
	go func() {
		defer bg.Done()
		if err := front.Run(bgCtx); err != nil {
			log.Error("function watch ended", "err", err)
		}
	}()
	// The runtimes this host can serve truthfully, and whether each
	// needs a bootstrap in the package.
	available := map[string]bool{}
	for name, rt := range runtimes.Available() {
		available[name] = rt.NeedsBootstrap
	}
	for _, name := range runtimes.Known() {
		if rt, ok := runtimes.Lookup(name); ok && rt.Interpreter != "" {
			log.Info("runtime available", "runtime", name, "interpreter", rt.Interpreter)
		} else if !ok {
			log.Debug("runtime not available", "runtime", name, "why", runtimes.Unavailable(name))
		}
	}
	control := controlapi.New(controlapi.Config{
		Runtimes: available,
		// A known runtime this host cannot serve is refused naming its
		// interpreter.
		RuntimeCatalog: controlapi.RuntimeCatalog{Known: runtimes.Known(), Unavailable: runtimes.Unavailable},
		Store:          writeThrough{st, front}, Auth: verifier, Signer: sealer, Accounts: accounts, Region: cfg.Region,
		RatePerSecond: cfg.ControlRate, Burst: cfg.ControlBurst, Logger: log,
		AccountConcurrency: cfg.AccountConcurrency, OnReservation: counter.SetReserved,
		// Provisioned concurrency: the manager keeps the sandboxes, the
		// Counting Service carves the slots out.
		Provisioner: countedProvisioner{manager, counter}, MinUnreserved: cfg.minUnreserved,
	})
	if err := control.RestoreProvisioned(ctx); err != nil {
		log.Warn("provisioned concurrency not restored", "err", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, "ok\n")
	})
	mux.Handle("POST /2015-03-31/functions/{fn}/invocations", front)
	mux.Handle("GET /metrics", mets.Handler(cfg.MetricsToken))
	// CloudWatch Logs shares POST / with nothing of Lambda's: its requests
	// are told apart by their X-Amz-Target.
	logsAPI := logs.NewAPI(logs.APIConfig{Store: logStore, Auth: verifier, Region: cfg.Region, Logger: log})
	mux.Handle("POST /{$}", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if logs.IsLogsRequest(r) {
			logsAPI.ServeHTTP(w, r)
			return
		}
		control.ServeHTTP(w, r)
	}))
	mux.Handle("/", control)
	// --- Asynchronous invocations (internal/async, issue 7): the durable
	// event queue takes Event invokes from the Front End, its pollers run
	// them through the Front End, and the event-invoke-config API and the
	// queue API (/ember/v1/queues) are mounted. Kept in one block; bg owns
	// the pollers.
	asyncQueue, err = async.Open(ctx, nc, async.Config{Region: cfg.Region, Logger: log, TimeScale: async.TimeScaleFromEnv(), Functions: st})
	if err != nil {
		return err
	}
	front.SetEventQueue(asyncQueue)
	control.SetDeadLetterTargets(asyncQueue) // DeadLetterConfig names Ember queues
	bg.Add(2)
	go func() {
		defer bg.Done()
		if err := asyncQueue.Run(bgCtx, front); err != nil {
			log.Error("async pollers ended", "err", err)
		}
	}()
	go func() {
		defer bg.Done()
		if err := asyncQueue.ForgetDeleted(bgCtx, st); err != nil {
			log.Error("event invoke config cleanup ended", "err", err)
		}
	}()
	asyncAPI := async.NewAPI(async.APIConfig{Queue: asyncQueue, Auth: verifier, Functions: st, Region: cfg.Region, Logger: log})
	for _, pattern := range async.Patterns {
		mux.Handle(pattern, asyncAPI)
	}
	// --- end of asynchronous invocations.
	var h http.Handler = mux
	app.Store(&h)
	log.Info("ready", "listen", ln.Addr().String(), "data_dir", cfg.DataDir, "region", cfg.Region)
	if cfg.Ready != nil {
		cfg.Ready(ln.Addr().String())
	}

	select {
	case <-ctx.Done():
		log.Info("shutting down")
		return nil
	case err := <-serveErr:
		serveErr <- err // for the deferred shutdown
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return err
	}
}

// bootstrap creates the first (administrator) account on the first start
// of an installation and writes its keys to DIR/credentials.
func bootstrap(ctx context.Context, st *store.Store, accounts *auth.Accounts, dir string, stdout io.Writer, log *slog.Logger) error {
	const key = "bootstrap-account"
	credPath := filepath.Join(dir, "credentials")
	id, err := st.Meta(ctx, key)
	if err != nil {
		return err
	}
	if id != "" {
		if _, err := os.Stat(credPath); err != nil {
			log.Warn("this installation's first account exists but its credentials file does not", "account", id, "path", credPath)
		}
		return nil
	}
	acct, err := accounts.CreateAccount(ctx, "default", true)
	if err != nil {
		return err
	}
	if err := st.SetMeta(ctx, key, acct.AccountID); err != nil {
		return err
	}
	if err := auth.WriteCredentials(credPath, "default", acct.AccessKeyID, acct.SecretAccessKey); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "ember: created account %s; its keys are in %s (profile [default])\n", acct.AccountID, credPath)
	log.Info("created the first account", "account", acct.AccountID, "credentials", credPath)
	return nil
}

// workerMemory is the memory the local worker offers: as configured, else
// three quarters of the host's.
func workerMemory(mb int) int {
	if mb > 0 {
		return mb
	}
	var total int
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int
		if _, err := fmt.Sscanf(string(b), "MemTotal: %d kB", &kb); err == nil {
			total = kb / 1024
		}
	}
	if total == 0 {
		return 4096
	}
	return total * 3 / 4
}

// removeStaleWorkerDirs removes the worker directories (runtimes, unpacked
// code) that Embers which did not stop cleanly left in dataDir: those
// named worker-PID-* whose process is gone, and those of the older
// worker-* form (no pid). A live Ember's directory is left alone.
func removeStaleWorkerDirs(dataDir string, log *slog.Logger) {
	dirs, _ := filepath.Glob(filepath.Join(dataDir, "worker-*"))
	for _, d := range dirs {
		rest := strings.TrimPrefix(filepath.Base(d), "worker-")
		if pid, _, ok := strings.Cut(rest, "-"); ok {
			if n, err := strconv.Atoi(pid); err == nil && n > 0 {
				if n == os.Getpid() || syscall.Kill(n, 0) == nil {
					continue // a live Ember's (or this one's)
				}
			}
		}
		if err := os.RemoveAll(d); err != nil {
			log.Warn("stale worker directory", "dir", d, "err", err)
			continue
		}
		log.Info("removed the worker directory of an Ember that did not stop", "dir", d)
	}
}

// countedProvisioner tells the Worker Manager how many provisioned
// sandboxes each version of a function should have, and the Counting
// Service the same per version: each version's slots to itself, carved
// out of the account's unreserved pool (or out of the function's
// reservation). The control API calls it on every change and, at start,
// for every stored configuration (RestoreProvisioned).
type countedProvisioner struct {
	*workermanager.Manager
	counter *counting.Service
}

func (p countedProvisioner) SetProvisioned(function string, want []store.ProvisionedVersion) {
	versions := map[string]int{}
	for _, v := range want {
		versions[v.Function.VersionName()] += v.Count
	}
	if account, name, ok := strings.Cut(function, "."); ok {
		p.counter.SetProvisioned(account, name, versions)
	}
	p.Manager.SetProvisioned(function, want)
}

// writeThrough is the store as the control API uses it: a write of a
// function or alias is told to the Front End as soon as it is stored
// (read-your-writes within this Ember), before the watch says so.
type writeThrough struct {
	*store.Store
	front *frontend.Server
}

func (w writeThrough) UpdateFunction(ctx context.Context, f store.Function, rev uint64) (uint64, error) {
	r, err := w.Store.UpdateFunction(ctx, f, rev)
	if err == nil {
		w.front.FunctionWritten(f.AccountID, f.Name, &f)
	}
	return r, err
}

func (w writeThrough) DeleteFunction(ctx context.Context, account, name string, rev uint64) error {
	err := w.Store.DeleteFunction(ctx, account, name, rev)
	if err == nil {
		w.front.FunctionWritten(account, name, nil)
	}
	return err
}

func (w writeThrough) UpdateAlias(ctx context.Context, a store.Alias, rev uint64) (uint64, error) {
	r, err := w.Store.UpdateAlias(ctx, a, rev)
	if err == nil {
		w.front.AliasWritten(a.AccountID, a.Function, a.Name, &a)
	}
	return r, err
}

func (w writeThrough) DeleteAlias(ctx context.Context, account, function, alias string, rev uint64) error {
	err := w.Store.DeleteAlias(ctx, account, function, alias, rev)
	if err == nil {
		w.front.AliasWritten(account, function, alias, nil)
	}
	return err
}
