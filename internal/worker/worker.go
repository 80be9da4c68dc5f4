// Package worker is the host agent: it makes sandboxes for functions,
// downloads and unpacks their code, runs their runtime's init, relays
// invocations through the Runtime API and reports how they ended.
package worker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"time"

	"github.com/emberfn/ember/internal/invoke"
	"github.com/emberfn/ember/internal/lambdaapi"
	"github.com/emberfn/ember/internal/runtimeapi"
	"github.com/emberfn/ember/internal/runtimes"
	"github.com/emberfn/ember/internal/sandbox"
	"github.com/emberfn/ember/internal/store"
)

// Errors of the worker.
var (
	ErrUnknownSandbox = errors.New("worker: no such sandbox")
	ErrBusy           = errors.New("worker: sandbox is busy")
)

// runtimeAPIAddr is where the Runtime API listens inside every sandbox.
const runtimeAPIAddr = "127.0.0.1:9001"

// CodeSource fetches code packages by digest.
type CodeSource interface {
	GetCode(ctx context.Context, account, sha256hex string) (io.ReadCloser, int64, error)
}

// Sandboxes starts sandboxes (sandbox.Manager).
type Sandboxes interface {
	Start(ctx context.Context, spec sandbox.Spec) (*sandbox.Sandbox, error)
}

// Config configures a worker. Code, Sandboxes and Dir are required.
type Config struct {
	ID        string
	Code      CodeSource
	Sandboxes Sandboxes
	// Dir holds the unpacked code cache; it is removed on Shutdown.
	Dir string
	// RuntimeDir holds the runtime clients Ember ships (runtimes.Install),
	// mounted read-only at /var/runtime for the managed runtimes.
	RuntimeDir string
	Region     string
	// InitTimeout bounds a runtime's init (default 10 s, Lambda's).
	InitTimeout time.Duration
	// OnSandboxExit, if set, is told when a sandbox's processes exit on
	// their own (a crash, or a runtime that quit after answering), so an
	// idle one is not handed out again.
	OnSandboxExit func(id string)
	// OpenLog, if set, opens the durable log stream of a new sandbox
	// (logs.Writer.Open): every line of its log goes there too.
	OpenLog func(account, group, stream string) LogStream
	// CPUCap caps each sandbox's CPU time as Lambda does, in proportion
	// to its memory (sandbox.CPUMilliForMemory: 1,769 MB is one CPU),
	// from the end of its runtime's init.
	// Off by default: the CPU weight, also proportional to memory, shares
	// a busy host in the same proportions without idling free CPU.
	CPUCap bool
	Logger *slog.Logger
}

// cpuCap is the CPU cap of a sandbox of memoryMB (0: none).
func (w *Worker) cpuCap(memoryMB int) int {
	if !w.cfg.CPUCap {
		return 0
	}
	return sandbox.CPUMilliForMemory(memoryMB)
}

// Worker hosts sandboxes.
type Worker struct {
	cfg  Config
	log  *slog.Logger
	code *codeCache

	mu    sync.Mutex
	boxes map[string]*box
}

// box is one sandbox with its Runtime API server and log.
type box struct {
	id      string
	fn      store.Function
	arn     string
	sb      *sandbox.Sandbox
	api     *runtimeapi.Server
	logs    *logPipe
	served  chan struct{}   // closed when api.Serve returned
	dead    context.Context // cancelled when the sandbox's processes are gone
	watched chan struct{}   // closed when the death watch returned
	busy    sync.Mutex      // one invocation at a time
	destroy sync.Once

	// Guarded by busy: the buffer the platform lines are made in, and
	// the sandbox's peak memory as last read and when.
	lines  []byte
	peak   int64
	peakAt time.Time
}

// peakReadInterval is how often, at most, a sandbox's peak memory is read
// from its cgroup for the REPORT line (two files, about 70 us on the
// machines of docs/performance.md): an invocation that ends within this
// interval of the last read reports that read. The peak only grows, so
// a REPORT shows at worst growth of the last 100 ms late; an invocation
// that ran longer than that, and the first one of a sandbox, always read
// it afresh.
const peakReadInterval = 100 * time.Millisecond

// maxMemoryMB is the sandbox's peak memory in MB, rounded up, for the
// REPORT line. Called with busy held.
func (b *box) maxMemoryMB(now time.Time) int64 {
	if b.peakAt.IsZero() || now.Sub(b.peakAt) >= peakReadInterval || isDone(b.sb.Done()) {
		b.peak = b.sb.MaxMemoryBytes()
		b.peakAt = now
	}
	return (b.peak + (1 << 20) - 1) >> 20
}

// New makes a worker.
func New(cfg Config) *Worker {
	if cfg.InitTimeout == 0 {
		cfg.InitTimeout = 10 * time.Second
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	log := cfg.Logger.With("component", "worker", "worker", cfg.ID)
	return &Worker{cfg: cfg, log: log, boxes: map[string]*box{},
		code: &codeCache{dir: filepath.Join(cfg.Dir, "code"), source: cfg.Code, locks: map[string]*sync.Mutex{}}}
}

// CreateSandbox makes a sandbox for fn and waits for its runtime's first
// /next. Init failures are *invoke.InitError and leave nothing behind.
func (w *Worker) CreateSandbox(ctx context.Context, id string, fn *store.Function) (time.Duration, error) {
	start := time.Now()
	tr := coldTrace{t0: start}
	codeDir, err := w.code.path(ctx, fn.AccountID, fn.CodeSHA256)
	if err != nil {
		return 0, err
	}
	tr.mark(&tr.code)
	pr, pw, err := os.Pipe()
	if err != nil {
		return 0, err
	}
	b := &box{id: id, fn: *fn, arn: lambdaapi.FunctionARN(w.cfg.Region, fn.AccountID, fn.Name), served: make(chan struct{})}
	stream := logStreamName(start, fn.VersionName())
	var sink LogStream
	if w.cfg.OpenLog != nil {
		sink = w.cfg.OpenLog(fn.AccountID, "/aws/lambda/"+fn.Name, stream)
	}
	b.logs = newLogPipe(pr, w.log.With("function", fn.Key(), "sandbox", id, "log_stream", stream), sink)
	go b.logs.run()
	tr.mark(&tr.logs)
	rt, ok := runtimes.Lookup(fn.Runtime)
	if !ok {
		pr.Close()
		pw.Close()
		<-b.logs.done
		return 0, &invoke.InitError{Type: "Runtime.InvalidRuntime", Message: runtimes.Unavailable(fn.Runtime)}
	}
	prog, args, extraEnv, err := runtimes.Command(rt, fn.Handler, runtimes.Options{
		MemoryMB: fn.MemorySize, ExecWrapper: fn.Environment["AWS_LAMBDA_EXEC_WRAPPER"]})
	if err != nil {
		pr.Close()
		pw.Close()
		<-b.logs.done
		return 0, err
	}
	mounts, err := w.codeMounts(ctx, fn, codeDir)
	if err != nil {
		pr.Close()
		pw.Close()
		<-b.logs.done
		return 0, err
	}
	if !rt.NeedsBootstrap {
		mounts = append(mounts, sandbox.Mount{Source: w.cfg.RuntimeDir, Target: runtimes.SandboxRuntimeDir, ReadOnly: true})
	}
	tr.mark(&tr.spec)
	spec := sandbox.Spec{
		ID:         id,
		Path:       prog,
		Args:       args,
		Env:        runtimes.MergeEnv(w.environment(fn, stream), extraEnv),
		Dir:        "/var/task",
		Mounts:     mounts,
		TmpSizeMB:  fn.EphemeralStorage,
		MemoryMB:   fn.MemorySize,
		PidsMax:    1024,
		CPUWeight:  max(1, fn.MemorySize*100/1769),
		UID:        993,
		GID:        990,
		ListenAddr: runtimeAPIAddr,
		// The process backend listens on another port: it rewrites this.
		ListenAddrEnv: "AWS_LAMBDA_RUNTIME_API",
		Network:       sandbox.NetworkNone,
		Stdout:        pw,
		Stderr:        pw,
	}
	// The Runtime API server is made while the sandbox starts (Start
	// mostly waits for the sandbox's init): it needs only the listener.
	apiMade := make(chan struct{})
	go func() {
		defer close(apiMade)
		b.api = runtimeapi.New(runtimeapi.Config{FunctionARN: b.arn, Logger: w.log.With("sandbox", id)})
	}()
	sb, err := w.cfg.Sandboxes.Start(ctx, spec)
	<-apiMade
	pw.Close() // the sandbox has its own copy
	if err != nil {
		pr.Close()
		<-b.logs.done
		return 0, fmt.Errorf("worker: start sandbox: %w", err)
	}
	b.sb = sb
	tr.mark(&tr.start)
	go func() {
		defer close(b.served)
		_ = b.api.Serve(sb.Listener())
	}()
	// One goroutine per sandbox turns its death into a context, so that
	// each invocation can be cancelled by it without a goroutine of its own.
	var died context.CancelFunc
	b.dead, died = context.WithCancel(context.Background())
	b.watched = make(chan struct{})
	go func() {
		defer close(b.watched)
		<-sb.Done()
		died()
		w.mu.Lock()
		_, live := w.boxes[id]
		w.mu.Unlock()
		if live && w.cfg.OnSandboxExit != nil {
			w.cfg.OnSandboxExit(id)
		}
	}()

	tr.mark(&tr.serve)
	ictx, cancel := context.WithTimeout(ctx, w.cfg.InitTimeout)
	stop := context.AfterFunc(b.dead, cancel)
	err = b.api.WaitInit(ictx)
	tr.mark(&tr.init)
	initErr := ictx.Err()
	stop()
	cancel()
	initDur := time.Since(start)
	if err != nil {
		ie := w.initError(b, err, initErr, initDur)
		_ = w.teardown(b)
		return 0, ie
	}
	// The CPU cap applies once the runtime has initialised (Lambda too
	// lets the init phase burst): a cap of a few percent of a CPU would
	// stretch a runtime's start to the next quota period.
	if c := w.cpuCap(fn.MemorySize); c > 0 {
		if err := b.sb.SetCPUMilli(c); err != nil {
			_ = w.teardown(b)
			return 0, fmt.Errorf("worker: capping the sandbox's CPU: %w", err)
		}
	}
	w.mu.Lock()
	w.boxes[id] = b
	w.mu.Unlock()
	if w.log.Enabled(ctx, slog.LevelDebug) {
		tr.mark(&tr.rest)
		w.log.DebugContext(ctx, "sandbox initialised", "sandbox", id, "total", time.Since(start),
			"code", tr.code, "log_open", tr.logs, "spec", tr.spec, "sandbox_start", tr.start,
			"api_serve", tr.serve, "runtime_init", tr.init, "rest", tr.rest)
	}
	return initDur, nil
}

// coldTrace is how long each step of CreateSandbox took: finding (or
// unpacking) the code, opening the log pipe and stream, building the
// sandbox's spec and mounts, starting the sandbox, starting the Runtime
// API server, and the runtime's own start to its first /next.
type coldTrace struct {
	t0, last                                   time.Time
	code, logs, spec, start, serve, init, rest time.Duration
}

func (t *coldTrace) mark(d *time.Duration) {
	now := time.Now()
	if t.last.IsZero() {
		t.last = t.t0
	}
	*d = now.Sub(t.last)
	t.last = now
}

// initError describes why a runtime did not initialise.
func (w *Worker) initError(b *box, err, ctxErr error, dur time.Duration) *invoke.InitError {
	var fe *runtimeapi.FunctionError
	ie := &invoke.InitError{}
	select {
	case <-b.sb.Done():
		b.logs.flush()
		ie.Type = "Runtime.ExitError"
		ie.Message = fmt.Sprintf("Runtime exited with error: %v", exitText(b.sb))
	default:
		switch {
		case errors.As(err, &fe):
			ie.Type, ie.Message = fe.Type, fe.Message
		case errors.Is(ctxErr, context.DeadlineExceeded):
			ie.Type = "Sandbox.Timedout"
			ie.Message = fmt.Sprintf("Init timed out after %.2f seconds", w.cfg.InitTimeout.Seconds())
		default:
			ie.Type, ie.Message = "Runtime.Unknown", err.Error()
		}
	}
	b.logs.write(initReport(dur, ie.Type))
	ie.Log = b.logs.tail()
	return ie
}

// initReport is the INIT_REPORT line of an init that failed after dur
// with errType: Lambda reports a timeout as "Status: timeout" (with no
// error type) and any other failure as "Status: error" with its type.
func initReport(dur time.Duration, errType string) string {
	status := "Status: error\tError Type: " + errType
	if errType == "Sandbox.Timedout" {
		status = "Status: timeout"
	}
	return fmt.Sprintf("INIT_REPORT Init Duration: %.2f ms\tPhase: init\t%s\n", float64(dur.Microseconds())/1000, status)
}

func exitText(sb *sandbox.Sandbox) string {
	if err := sb.ExitError(); err != nil {
		return err.Error()
	}
	return "exit status 0"
}

// environment is the function's environment: its own variables, then the
// reserved ones Lambda sets (which the control API keeps users from using).
func (w *Worker) environment(fn *store.Function, stream string) []string {
	env := make([]string, 0, len(fn.Environment)+20)
	for k, v := range fn.Environment {
		env = append(env, k+"="+v)
	}
	if _, ok := fn.Environment["GOMAXPROCS"]; !ok {
		env = append(env, "GOMAXPROCS="+strconv.Itoa(goMaxProcs(fn.MemorySize)))
	}
	return append(env,
		"AWS_LAMBDA_FUNCTION_NAME="+fn.Name,
		"AWS_LAMBDA_FUNCTION_MEMORY_SIZE="+strconv.Itoa(fn.MemorySize),
		"AWS_LAMBDA_FUNCTION_VERSION="+fn.VersionName(),
		"AWS_LAMBDA_INITIALIZATION_TYPE="+fn.InitType(),
		"AWS_LAMBDA_LOG_GROUP_NAME=/aws/lambda/"+fn.Name,
		"AWS_LAMBDA_LOG_STREAM_NAME="+stream,
		"AWS_LAMBDA_RUNTIME_API="+runtimeAPIAddr,
		"AWS_REGION="+w.cfg.Region,
		"AWS_DEFAULT_REGION="+w.cfg.Region,
		"_HANDLER="+fn.Handler,
		"LAMBDA_TASK_ROOT=/var/task",
		"LAMBDA_RUNTIME_DIR=/var/runtime",
		"TZ=:UTC",
		"LANG=en_US.UTF-8",
		"PATH=/usr/local/bin:/usr/bin:/bin:/opt/bin",
		"LD_LIBRARY_PATH=/lib64:/usr/lib64:/var/runtime:/var/runtime/lib:/var/task:/var/task/lib:/opt/lib",
	)
}

// goMaxProcs is the GOMAXPROCS a Go function gets unless it sets its own:
// its share of the CPUs (Lambda's, as the sandbox's CPU weight: 1,769 MB
// is one CPU), rounded up, at most the host's CPUs. Go's own default is
// every CPU of the host (at least 2 under a cgroup CPU limit); a Go
// runtime with more Ps than its CPU share spins and wakes threads for
// nothing: measured with ember bench's aws-lambda-go echo at 128 MB,
// GOMAXPROCS=1 made warm invokes 15-20% faster at concurrency 1 and gave
// 25-30% more throughput at 8 (docs/decisions.md).
func goMaxProcs(memoryMB int) int {
	return min(runtime.NumCPU(), max(1, (memoryMB+sandbox.MemoryPerCPU-1)/sandbox.MemoryPerCPU))
}

// logStreamName is Lambda's name of a sandbox's log stream.
func logStreamName(t time.Time, version string) string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return t.UTC().Format("2006/01/02") + "/[" + version + "]" + hex.EncodeToString(b[:])
}

// Invoke runs one invocation in a sandbox, bounded by the function's
// timeout. A timeout, a crash or running out of memory is a function error
// and the sandbox is marked for discarding.
func (w *Worker) Invoke(ctx context.Context, sandboxID string, req *invoke.Request) (*invoke.Result, error) {
	w.mu.Lock()
	b, ok := w.boxes[sandboxID]
	w.mu.Unlock()
	if !ok {
		return nil, ErrUnknownSandbox
	}
	if !b.busy.TryLock() {
		return nil, ErrBusy
	}
	defer b.busy.Unlock()
	if isDone(b.sb.Done()) {
		return nil, invoke.ErrSandboxGone
	}

	timeout := time.Duration(b.fn.Timeout) * time.Second
	start := time.Now()
	deadline := start.Add(timeout)
	version := req.Version
	if version == "" {
		version = lambdaapi.VersionLatest
	}
	b.logs.begin(req.RequestID)
	b.lines = append(append(append(append(b.lines[:0], "START RequestId: "...), req.RequestID...), " Version: "...), version...)
	b.lines = append(b.lines, '\n')
	b.logs.writeLines(b.lines)

	// The caller going away does not stop the function (as Lambda); its
	// timeout and the sandbox's death do.
	ictx, cancel := context.WithDeadline(context.WithoutCancel(ctx), deadline)
	defer cancel()
	stop := context.AfterFunc(b.dead, cancel)
	defer stop()
	invokedARN := b.arn
	if req.InvokedFunctionARN != "" {
		invokedARN = req.InvokedFunctionARN
	}
	resp, err := b.api.Invoke(ictx, &runtimeapi.Invocation{
		RequestID: req.RequestID, Payload: req.Payload, Deadline: deadline,
		InvokedFunctionARN: invokedARN, ClientContext: req.ClientContext, TraceID: req.TraceID,
	})
	dur := time.Since(start)
	res := &invoke.Result{Duration: dur}
	status := ""
	var fe *runtimeapi.FunctionError
	switch {
	case err == nil:
		res.Payload = resp.Payload
		if resp.FunctionError != "" {
			res.FunctionError = "Unhandled"
		}
	case errors.As(err, &fe):
		res.FunctionError = "Unhandled"
		res.Payload = errorJSON(fe.Type, fmt.Sprintf("RequestId: %s Error: %s", req.RequestID, fe.Message))
	case errors.Is(err, runtimeapi.ErrNotDelivered) && isDone(b.sb.Done()):
		// The runtime quit (after answering the previous invocation)
		// without asking for this one: it did not run here.
		b.logs.flush()
		return nil, invoke.ErrSandboxGone
	case isDone(b.sb.Done()):
		b.logs.flush()
		res.FunctionError, res.Discard = "Unhandled", true
		errType := "Runtime.ExitError"
		if b.sb.OOMKilled() {
			status = "\tStatus: error\tError Type: Runtime.OutOfMemory"
		} else {
			status = "\tStatus: error\tError Type: " + errType
		}
		res.Payload = errorJSON(errType, fmt.Sprintf("RequestId: %s Error: Runtime exited with error: %s", req.RequestID, exitText(b.sb)))
	case errors.Is(ictx.Err(), context.DeadlineExceeded):
		res.FunctionError, res.Discard = "Unhandled", true
		msg := fmt.Sprintf("Task timed out after %.2f seconds", timeout.Seconds())
		b.logs.write(fmt.Sprintf("%s %s %s\n", time.Now().UTC().Format("2006-01-02T15:04:05.000Z"), req.RequestID, msg))
		status = "\tStatus: timeout"
		res.Payload = errorJSON("Sandbox.Timedout", fmt.Sprintf("RequestId: %s Error: %s", req.RequestID, msg))
	default:
		return nil, fmt.Errorf("worker: invoke: %w", err)
	}
	b.logs.flush()
	b.lines = appendEndReport(b.lines[:0], req.RequestID, dur, req.InitDuration, b.fn.MemorySize, b.maxMemoryMB(time.Now()), status)
	b.logs.writeLines(b.lines)
	res.Log = b.logs.tail()
	return res, nil
}

// appendEndReport appends the END and REPORT lines of an invocation that
// ran for dur (initDur > 0: the first of its sandbox), as Lambda writes
// them; status is what follows the memory figures (the timeout or error).
func appendEndReport(b []byte, requestID string, dur, initDur time.Duration, memoryMB int, maxUsedMB int64, status string) []byte {
	ms := float64(dur.Microseconds()) / 1000
	b = append(append(append(b, "END RequestId: "...), requestID...), '\n')
	b = append(append(append(b, "REPORT RequestId: "...), requestID...), "\tDuration: "...)
	b = append(strconv.AppendFloat(b, ms, 'f', 2, 64), " ms\tBilled Duration: "...)
	b = append(strconv.AppendInt(b, int64(ms)+1, 10), " ms\tMemory Size: "...)
	b = append(strconv.AppendInt(b, int64(memoryMB), 10), " MB\tMax Memory Used: "...)
	b = append(strconv.AppendInt(b, maxUsedMB, 10), " MB"...)
	if initDur > 0 {
		b = append(b, "\tInit Duration: "...)
		b = append(strconv.AppendFloat(b, float64(initDur.Microseconds())/1000, 'f', 2, 64), " ms"...)
	}
	return append(append(b, status...), '\n')
}

// errorJSON is the error body Lambda returns for a platform-detected
// function error.
func errorJSON(typ, msg string) []byte {
	b, _ := json.Marshal(struct {
		ErrorMessage string `json:"errorMessage"`
		ErrorType    string `json:"errorType"`
	}{msg, typ})
	return b
}

func isDone(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// DestroySandbox kills a sandbox and releases all it had.
func (w *Worker) DestroySandbox(ctx context.Context, id string) error {
	w.mu.Lock()
	b, ok := w.boxes[id]
	delete(w.boxes, id)
	w.mu.Unlock()
	if !ok {
		return ErrUnknownSandbox
	}
	return w.teardown(b)
}

// teardown stops the Runtime API, destroys the sandbox and waits for the
// goroutines of the box.
func (w *Worker) teardown(b *box) error {
	var err error
	b.destroy.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		err = b.sb.Destroy(ctx)
		<-b.watched
		_ = b.api.Close()
		<-b.served
		<-b.logs.done
		b.logs.sink.Close()
		b.logs.r.Close()
	})
	return err
}

// Sandboxes is the number of live sandboxes.
func (w *Worker) Sandboxes() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.boxes)
}

// Shutdown destroys every sandbox and removes the code cache.
func (w *Worker) Shutdown(ctx context.Context) error {
	w.mu.Lock()
	boxes := w.boxes
	w.boxes = map[string]*box{}
	w.mu.Unlock()
	var errs []error
	for _, b := range boxes {
		errs = append(errs, w.teardown(b))
	}
	errs = append(errs, w.code.clear())
	return errors.Join(errs...)
}

// codeMounts are a sandbox's code mounts: the function's code read-only
// at /var/task and, if it has layers, their contents read-only at /opt.
func (w *Worker) codeMounts(ctx context.Context, fn *store.Function, codeDir string) ([]sandbox.Mount, error) {
	mounts := []sandbox.Mount{{Source: codeDir, Target: runtimes.SandboxTaskDir, ReadOnly: true}}
	digests := make([]string, len(fn.Layers))
	for i, l := range fn.Layers {
		digests[i] = l.CodeSHA256
	}
	opt, err := w.code.layersPath(ctx, fn.AccountID, digests)
	if err != nil {
		return nil, err
	}
	if opt != "" {
		mounts = append(mounts, sandbox.Mount{Source: opt, Target: sandboxOptDir, ReadOnly: true})
	}
	return mounts, nil
}
