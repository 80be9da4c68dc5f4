package main

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"runtime/trace"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/emberfn/ember/internal/auth"
	"github.com/emberfn/ember/internal/runtimes"
	"github.com/emberfn/ember/internal/stagetime"
	"github.com/emberfn/ember/internal/worker"
	"github.com/emberfn/ember/internal/workermanager"
)

// runBench measures Ember beside a plain loopback HTTP round trip, in one
// run, so that the ratios hold on a noisy machine. Run it from the
// repository root as root: it builds the probe test function with `go`.
func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	n := fs.Int("n", 2000, "invocations per warm measurement")
	colds := fs.Int("cold", 30, "cold starts to measure")
	asJSON := fs.Bool("json", false, "print JSON")
	fleetN := fs.Int("sandboxes", 1000, "idle sandboxes to create at once and measure")
	events := fs.Int("events", 5000, "asynchronous (Event) invokes to send")
	eventConc := fs.Int("event-concurrency", 32, "connections sending the asynchronous invokes")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the run (the bench's client and Ember, in this process) to this file")
	memProfile := fs.String("memprofile", "", "write a profile of the run's memory allocations (the bench's client and Ember) to this file")
	traceFile := fs.String("trace", "", "write a Go execution trace of the run (the bench's client and Ember) to this file, for `go tool trace`")
	quick := fs.Bool("quick", false, "a short run that checks the benchmark works (CI's smoke test), not for figures")
	only := fs.String("only", "", "measure only these parts, comma-separated, of: floor, rie, cold, runtimes, warm, fleet, async (the floor is always measured: it is the yardstick)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	want := map[string]bool{}
	for _, part := range []string{"floor", "rie", "cold", "runtimes", "warm", "fleet", "async"} {
		want[part] = *only == ""
	}
	if *only != "" {
		for _, part := range strings.Split(*only, ",") {
			if _, ok := want[part]; !ok {
				return fmt.Errorf("bench: --only: unknown part %q", part)
			}
			want[part] = true
		}
	}
	if *quick {
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		*n, *colds = 100, 3
		if !set["sandboxes"] {
			*fleetN = 20
		}
		if !set["events"] {
			*events = 200
		}
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	if *traceFile != "" {
		f, err := os.Create(*traceFile)
		if err != nil {
			return err
		}
		if err := trace.Start(f); err != nil {
			f.Close()
			return err
		}
		defer func() {
			trace.Stop()
			if err := f.Close(); err != nil {
				fmt.Fprintf(stderr, "ember bench: the trace is incomplete: %v\n", err)
			}
		}()
	}
	if *memProfile != "" {
		defer func() {
			if f, err := os.Create(*memProfile); err == nil {
				_ = pprof.Lookup("allocs").WriteTo(f, 0)
				f.Close()
			}
		}()
	}
	dir, err := os.MkdirTemp("", "ember-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	zipBytes, err := buildProbeZip(dir)
	if err != nil {
		return err
	}

	// The yardstick: a plain Go net/http echo server on loopback.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	echo := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		stagetime.Mark(stagetime.FrontEnd)
		b, _ := io.ReadAll(r.Body)
		_, _ = w.Write(b)
		stagetime.Mark(stagetime.ResponseWritten)
	})}
	go echo.Serve(ln)
	defer echo.Close()

	began := time.Now()
	progress := func(what string) { fmt.Fprintf(stderr, "ember bench: %6.1fs %s\n", time.Since(began).Seconds(), what) }

	// The official Runtime Interface Emulator running the same function:
	// one invoke at a time, no isolation.
	var rieRows []benchRow
	if want["rie"] {
		progress("the Runtime Interface Emulator")
		rieRows, err = benchRIE(ctx, dir, zipBytes, *n, *colds)
		if err != nil {
			fmt.Fprintf(stderr, "ember bench: the Runtime Interface Emulator was not measured: %v\n", err)
		}
	}

	// Ember, all in one, in this process.
	sctx, stop := context.WithCancel(ctx)
	addr := make(chan string, 1)
	done := make(chan error, 1)
	// Placement reserves each sandbox's whole memory size on the worker,
	// so n idle 128 MB sandboxes need n*128 MB of capacity (the default,
	// 3/4 of this host's memory, holds fewer); they use a few MB each.
	// Provisioned concurrency must leave 100 of the account's
	// concurrency unreserved.
	workerMB := max(workerMemory(0), (*fleetN+200)*128)
	var manager *workermanager.Manager // set before Ready is called
	go func() {
		done <- serve(sctx, serveConfig{Listen: "127.0.0.1:0", DataDir: filepath.Join(dir, "data"), Region: "us-east-1",
			ControlRate: 1e6, ControlBurst: 1e6, WorkerMemoryMB: workerMB, AccountConcurrency: max(1000, *fleetN+100),
			SandboxPool: 2, // as ember serve's default
			onDataPlane: func(m *workermanager.Manager, _ *worker.Worker) { manager = m },
			Ready:       func(a string) { addr <- a }}, io.Discard)
	}()
	var url string
	select {
	case a := <-addr:
		url = "http://" + a
	case err := <-done:
		stop()
		return err
	}
	defer func() { stop(); <-done; progress("Ember stopped") }()
	id, secret, err := auth.ReadCredentials(filepath.Join(dir, "data", "credentials"), "default")
	if err != nil {
		return err
	}
	c := &benchClient{http: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}},
		creds: aws.Credentials{AccessKeyID: id, SecretAccessKey: secret}, signer: v4.NewSigner()}

	payload := []byte(`{"hello":"world"}`)
	var rows []benchRow
	add := func(name string, conc int, lat []time.Duration, wall time.Duration) {
		rows = append(rows, summarize(name, conc, lat, wall))
	}
	var splits []cpuSplit
	for _, conc := range []int{1, 8} {
		lat, wall, split, err := measureSplit(*n, conc, floorName, func() error { return c.post(ln.Addr().String(), "/echo", payload, false) })
		if err != nil {
			return err
		}
		add(floorName, conc, lat, wall)
		splits = append(splits, split)
	}
	rows = append(rows, rieRows...)
	create := func(name string) error {
		body, _ := json.Marshal(map[string]any{"FunctionName": name, "Runtime": "provided.al2023",
			"Code": map[string]any{"ZipFile": zipBytes}})
		return c.post(url[len("http://"):], "/2015-03-31/functions", body, true)
	}
	if want["cold"] {
		progress("Ember cold invokes")
		// Cold: a new function each time, so each invoke makes a sandbox.
		var cold []time.Duration
		coldStart := time.Now()
		for i := 0; i < *colds; i++ {
			name := fmt.Sprintf("cold-%d", i)
			if err := create(name); err != nil {
				return err
			}
			t := time.Now()
			if err := c.post(url[len("http://"):], "/2015-03-31/functions/"+name+"/invocations", payload, true); err != nil {
				return err
			}
			cold = append(cold, time.Since(t))
		}
		add("Ember cold invoke (new sandbox, to response)", 1, cold, time.Since(coldStart))
	}
	if want["runtimes"] {
		// The managed runtimes' cold starts, where the host has them.
		for _, rt := range []struct{ runtime, file, handler, code string }{
			{newestRuntime("python"), "app.py", "app.handler", "def handler(event, context):\n    return event\n"},
			{newestRuntime("nodejs"), "index.mjs", "index.handler", "export const handler = async (event) => event;\n"},
		} {
			if rt.runtime == "" {
				continue
			}
			z, err := zipOne(rt.file, rt.code)
			if err != nil {
				return err
			}
			var lat []time.Duration
			t0 := time.Now()
			for i := 0; i < max(*colds/3, 3); i++ {
				name := fmt.Sprintf("cold-%s-%d", strings.ReplaceAll(rt.runtime, ".", "-"), i)
				body, _ := json.Marshal(map[string]any{"FunctionName": name, "Runtime": rt.runtime, "Handler": rt.handler,
					"Code": map[string]any{"ZipFile": z}})
				if err := c.post(url[len("http://"):], "/2015-03-31/functions", body, true); err != nil {
					return err
				}
				t := time.Now()
				if err := c.post(url[len("http://"):], "/2015-03-31/functions/"+name+"/invocations", payload, true); err != nil {
					return err
				}
				lat = append(lat, time.Since(t))
			}
			add("Ember cold invoke, "+rt.runtime+" hello", 1, lat, time.Since(t0))
		}
	}
	if want["warm"] {
		progress("Ember warm invokes")
		if err := create("warm"); err != nil {
			return err
		}
		for _, conc := range []int{1, 8, 32} {
			lat, wall, split, err := measureSplit(*n, conc, warmName, func() error {
				return c.post(url[len("http://"):], "/2015-03-31/functions/warm/invocations", payload, true)
			})
			if err != nil {
				return err
			}
			add(warmName, conc, lat, wall)
			splits = append(splits, split)
		}
		// The function's own part of a warm invoke: its runtime's round
		// trip with Ember's Runtime API server alone.
		progress("the aws-lambda-go runtime's round trip alone")
		row, split, err := benchRuntimeAlone(ctx, filepath.Join(dir, "bootstrap"), *n)
		if err != nil {
			return fmt.Errorf("the runtime's round trip alone: %w", err)
		}
		rows = append(rows, row)
		splits = append(splits, split)
	}
	var fleet fleetResult
	async := &asyncResult{}
	if want["fleet"] || want["async"] {
		// One function for the sandbox fleet (its version 1) and the
		// asynchronous invokes ($LATEST), 128 MB. A timeout of 30 s, not
		// 3: a sandbox with 128 MB's CPU share can be starved that long
		// on a loaded 2-core machine (the CI smoke run).
		body, _ := json.Marshal(map[string]any{"FunctionName": "many", "Runtime": "provided.al2023", "MemorySize": 128, "Timeout": 30,
			"Code": map[string]any{"ZipFile": zipBytes}})
		if err := c.post(url[len("http://"):], "/2015-03-31/functions", body, true); err != nil {
			return err
		}
	}
	if want["async"] {
		progress(fmt.Sprintf("%d asynchronous invokes", *events))
		var eventRows []benchRow
		eventRows, async, err = benchEvents(c, url[len("http://"):], "many", *events, *eventConc, false)
		if err != nil {
			return fmt.Errorf("async invokes: %w", err)
		}
		rows = append(rows, eventRows...)
		// The accept path alone at the same concurrency, and at twice
		// it: a sender waits for its event's group commit (a synced
		// write), so that its rate is bounded by the senders, not by
		// what Ember can accept.
		for _, conc := range []int{*eventConc, 2 * *eventConc} {
			progress(fmt.Sprintf("%d asynchronous invokes of a function held, %d at once", *events, conc))
			var held *asyncResult
			eventRows, held, err = benchEvents(c, url[len("http://"):], "many", *events, conc, true)
			if err != nil {
				return fmt.Errorf("async invokes of a function held: %w", err)
			}
			rows = append(rows, eventRows...)
			async.Held = append(async.Held, held)
		}
	}
	if want["fleet"] {
		// Last: the teardown of a thousand sandboxes (their network
		// namespaces' above all) goes on in the kernel for seconds after
		// their processes are gone, and would slow what came next.
		progress(fmt.Sprintf("%d sandboxes at once", *fleetN))
		// The function's start alone first: a plain child of this
		// process copies its file table at the clone and closes it at
		// the exec, which costs in proportion to this process's open
		// files, and during the fleet's teardown those are thousands. (Its
		// CPU is read from the reaped children's before the fleet's is.)
		alone, err := functionStartAlone(ctx, filepath.Join(dir, "bootstrap"), 50)
		if err != nil {
			return fmt.Errorf("the function's start alone: %w", err)
		}
		// Many sandboxes at once, then idle: creation rate and memory.
		var fleetRow benchRow
		fleetRow, fleet, err = benchFleet(c, url[len("http://"):], "many", *fleetN, manager.ProvisionedStatus)
		if err != nil {
			return fmt.Errorf("sandbox fleet: %w", err)
		}
		rows = append(rows, fleetRow)
		fleet.FunctionStartAloneMs = alone.Seconds() * 1000
	}
	progress("done")
	if *asJSON {
		return json.NewEncoder(stdout).Encode(map[string]any{"cpus": runtime.NumCPU(), "rows": rows, "cpu_per_request": splits,
			"idle_sandboxes": fleet, "async": async})
	}
	floor := rows[0].P50
	fmt.Fprintf(stdout, "%-62s %5s %9s %9s %9s %10s %8s\n", "measurement", "conc", "p50", "p90", "p99", "req/s", "p50/floor")
	for _, r := range rows {
		if r.P50 == 0 { // a throughput only
			fmt.Fprintf(stdout, "%-62s %5d %9s %9s %9s %10.0f %9s\n", r.Name, r.Concurrency, "-", "-", "-", r.PerSecond, "-")
			continue
		}
		fmt.Fprintf(stdout, "%-62s %5d %9s %9s %9s %10.0f %8.1fx\n", r.Name, r.Concurrency, us(r.P50), us(r.P90), us(r.P99), r.PerSecond, float64(r.P50)/float64(floor))
	}
	printSplits(stdout, splits, rows)
	if stagetime.Enabled {
		printStages(stdout, splits)
	}
	if want["fleet"] {
		printFleet(stdout, fleet)
	}
	if !want["async"] {
		return nil
	}
	fmt.Fprintf(stdout, "\nasync: %d events sent (%d measured in %.2f s, %.0f accepted/s, Ember and the client using %.0f%% of a CPU); all run %.2f s after the first (%.0f/s), %.2f s after the last 202\n",
		async.Events, *events, async.AcceptSeconds, async.AcceptedPerSecond, async.AcceptCPUPercent, async.ProcessedSeconds, async.ProcessedPerSecond, async.DrainSeconds)
	for _, h := range async.Held {
		fmt.Fprintf(stdout, "async, the function held (reserved concurrency 0 while sent), %d at once: %d events sent (%d measured in %.2f s, %.0f accepted/s, Ember and the client using %.0f%% of a CPU); all run %.2f s after the release\n",
			h.Concurrency, h.Events, *events, h.AcceptSeconds, h.AcceptedPerSecond, h.AcceptCPUPercent, h.DrainSeconds)
	}
	return nil
}

// newestRuntime is the last runtime name of a family (python, nodejs), in
// Ember's list of known runtimes, that this host serves; "" if none.
func newestRuntime(family string) string {
	name := ""
	for _, n := range runtimes.Known() {
		if _, ok := runtimes.Lookup(n); ok && strings.HasPrefix(n, family) {
			name = n
		}
	}
	return name
}

type benchRow struct {
	Name          string
	Concurrency   int
	P50, P90, P99 time.Duration
	PerSecond     float64
}

func us(d time.Duration) string { return fmt.Sprintf("%.3fms", float64(d.Microseconds())/1000) }

func summarize(name string, conc int, lat []time.Duration, wall time.Duration) benchRow {
	slices.Sort(lat)
	q := func(p float64) time.Duration { return lat[int(p*float64(len(lat)-1))] }
	return benchRow{Name: name, Concurrency: conc, P50: q(0.5), P90: q(0.9), P99: q(0.99),
		PerSecond: float64(len(lat)) / wall.Seconds()}
}

// measure runs f n times over conc goroutines (after a short warm-up of
// conc*4 calls, conc at a time).
func measure(n, conc int, f func() error) ([]time.Duration, time.Duration, error) {
	return measureWarm(n, conc, conc*4, f)
}

// measureSplit is measure, and the CPU per call that the measured calls
// (not the warm-up) cost this process and its children (cpuSplit).
//
// At concurrency 1, in a build with -tags stagetime, it also records the
// measured invokes' steps (internal/stagetime), after the warm-up.
func measureSplit(n, conc int, name string, f func() error) ([]time.Duration, time.Duration, cpuSplit, error) {
	if _, _, err := measureWarm(conc*4, conc, 0, f); err != nil {
		return nil, 0, cpuSplit{}, err
	}
	if conc == 1 {
		stagetime.Start()
	}
	m := markCPU()
	lat, wall, err := measureWarm(n, conc, 0, f)
	var stages [][stagetime.NumPoints]int64
	if conc == 1 {
		stages = stagetime.Stop()
	}
	if err != nil {
		return nil, 0, cpuSplit{}, err
	}
	split := splitSince(m, name, conc, len(lat))
	split.stages = stages
	return lat, wall, split, nil
}

// measureWarm runs f warm times, then n times, each over conc goroutines:
// the warm-up at the measured concurrency, so that as many sandboxes as
// concurrent invokes are warm before the measurement (one at a time, it
// would leave all but one to be created during it).
func measureWarm(n, conc, warm int, f func() error) ([]time.Duration, time.Duration, error) {
	if warm > 0 {
		if _, _, err := measureWarm(warm, min(conc, warm), 0, f); err != nil {
			return nil, 0, err
		}
	}
	lat := make([]time.Duration, n)
	var wg sync.WaitGroup
	var firstErr error
	var mu sync.Mutex
	next := make(chan int, n)
	for i := 0; i < n; i++ {
		next <- i
	}
	close(next)
	start := time.Now()
	for g := 0; g < conc; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				t := time.Now()
				if err := f(); err != nil {
					mu.Lock()
					firstErr = err
					mu.Unlock()
					return
				}
				lat[i] = time.Since(t)
			}
		}()
	}
	wg.Wait()
	return lat, time.Since(start), firstErr
}

type benchClient struct {
	http   *http.Client
	creds  aws.Credentials
	signer *v4.Signer
}

func (c *benchClient) post(host, path string, body []byte, sign bool) error {
	_, err := c.do("POST", host, path, body, sign, nil)
	return err
}

// do sends one request (SigV4-signed if sign) and returns the body of a
// 2xx answer without a function error; anything else is an error.
func (c *benchClient) do(method, host, path string, body []byte, sign bool, header map[string]string) ([]byte, error) {
	stagetime.Mark(stagetime.ClientStart)
	defer stagetime.End()
	req, err := http.NewRequest(method, "http://"+host+path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	if sign {
		sum := sha256.Sum256(body)
		if err := c.signer.SignHTTP(context.Background(), c.creds, req, hex.EncodeToString(sum[:]), "lambda", "us-east-1", time.Now()); err != nil {
			return nil, err
		}
	}
	stagetime.Mark(stagetime.ClientSigned)
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	b, _ := io.ReadAll(resp.Body)
	stagetime.Mark(stagetime.ClientDone)
	resp.Body.Close()
	if resp.StatusCode >= 300 || resp.Header.Get("X-Amz-Function-Error") != "" {
		return nil, fmt.Errorf("%s %s: %s %s", method, path, resp.Status, b)
	}
	return b, nil
}

// rieModule is the official AWS Lambda Runtime Interface Emulator, built
// from the Go module proxy at this version.
// The rows that printSplits and the tests find by name.
const (
	floorName = "loopback HTTP echo (floor)"
	warmName  = "Ember warm invoke"
	aloneName = "aws-lambda-go round trip alone (Runtime API, no sandbox)"
)

const rieModule = "github.com/aws/aws-lambda-runtime-interface-emulator/cmd/aws-lambda-rie@v0.0.0-20261030222936-bef5c4ba774d"

// benchRIE measures the emulator: warm invokes at concurrency 1 (it can do
// no more) and cold ones (a new emulator process, first invoke).
func benchRIE(ctx context.Context, dir string, zipBytes []byte, n, colds int) ([]benchRow, error) {
	bin := filepath.Join(dir, "rie")
	cmd := exec.CommandContext(ctx, "go", "install", rieModule)
	cmd.Env = append(os.Environ(), "GOBIN="+bin, "GOFLAGS=")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("go install %s: %v\n%s", rieModule, err, out)
	}
	zr, err := zip.NewReader(bytes.NewReader(zipBytes), int64(len(zipBytes)))
	if err != nil {
		return nil, err
	}
	rc, err := zr.File[0].Open()
	if err != nil {
		return nil, err
	}
	boot, _ := io.ReadAll(rc)
	rc.Close()
	bootPath := filepath.Join(dir, "rie-bootstrap")
	if err := os.WriteFile(bootPath, boot, 0o755); err != nil {
		return nil, err
	}
	start := func() (*exec.Cmd, string, error) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, "", err
		}
		addr := ln.Addr().String()
		ln.Close()
		c := exec.Command(filepath.Join(bin, "aws-lambda-rie"), "--runtime-interface-emulator-address", addr,
			"--log-level", "error", bootPath)
		c.Env = append(os.Environ(), "AWS_LAMBDA_FUNCTION_TIMEOUT=30")
		if err := c.Start(); err != nil {
			return nil, "", err
		}
		// Wait until it accepts connections.
		for i := 0; i < 500; i++ {
			if conn, err := net.Dial("tcp", addr); err == nil {
				conn.Close()
				return c, addr, nil
			}
			time.Sleep(10 * time.Millisecond)
		}
		c.Process.Kill()
		c.Wait()
		return nil, "", fmt.Errorf("the emulator did not listen")
	}
	client := &benchClient{http: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}}
	payload := []byte(`{"hello":"world"}`)
	const path = "/2015-03-31/functions/function/invocations"
	var cold []time.Duration
	coldStart := time.Now()
	for i := 0; i < colds; i++ {
		c, addr, err := start()
		if err != nil {
			return nil, err
		}
		t := time.Now()
		err = client.post(addr, path, payload, false)
		cold = append(cold, time.Since(t))
		c.Process.Kill()
		c.Wait()
		if err != nil {
			return nil, err
		}
	}
	c, addr, err := start()
	if err != nil {
		return nil, err
	}
	defer func() { c.Process.Kill(); c.Wait() }()
	lat, wall, err := measure(n, 1, func() error { return client.post(addr, path, payload, false) })
	if err != nil {
		return nil, err
	}
	return []benchRow{
		summarize("AWS RIE warm (emulator, no isolation)", 1, lat, wall),
		summarize("AWS RIE cold (new emulator process, to response)", 1, cold, time.Since(coldStart)),
	}, nil
}

// zipOne is a package of one file.
func zipOne(name, body string) ([]byte, error) {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, err := zw.Create(name)
	if err != nil {
		return nil, err
	}
	if _, err := io.WriteString(w, body); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// buildProbeZip builds the probe test function into a zip.
func buildProbeZip(dir string) ([]byte, error) {
	bin := filepath.Join(dir, "bootstrap")
	src := "./cmd/ember/testdata/functions/probe"
	if _, err := os.Stat("testdata/functions/probe"); err == nil {
		src = "./testdata/functions/probe" // run from cmd/ember (its tests)
	}
	cmd := exec.Command("go", "build", "-trimpath", "-o", bin, src)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("building the probe function (run from the repository root): %v\n%s", err, out)
	}
	b, err := os.ReadFile(bin)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	h := &zip.FileHeader{Name: "bootstrap", Method: zip.Deflate}
	h.SetMode(0o755)
	w, err := zw.CreateHeader(h)
	if err != nil {
		return nil, err
	}
	if _, err := w.Write(b); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// asyncResult is what benchEvents measures besides its rows.
type asyncResult struct {
	Events int // sent (the warm-up included)
	// AcceptSeconds is the time to send the measured events (202 each);
	// AcceptedPerSecond the measured events over it.
	AcceptSeconds     float64
	AcceptedPerSecond float64
	// ProcessedSeconds is from the first event sent to the last one run;
	// ProcessedPerSecond is Events over it. DrainSeconds is from the last
	// 202 to the last event run: the backlog the pollers had left.
	ProcessedSeconds   float64
	ProcessedPerSecond float64
	DrainSeconds       float64
	// AcceptCPUPercent is this process's CPU use (Ember and the client)
	// while the measured events were sent, in percent of one CPU.
	AcceptCPUPercent float64
	// Held is the same for events sent while the function was held
	// (reserved concurrency 0), their DrainSeconds from the release.
	Held []*asyncResult `json:",omitempty"`
	// Concurrency is how many senders sent the events at once.
	Concurrency int
}

// benchEvents measures asynchronous invokes of the probe echo (function
// name, $LATEST): n signed
// Event invokes over conc connections (after a warm-up of conc), each
// answered 202 once the event is stored durably (JetStream acknowledges
// the write, synced to disk, before the Front End answers), then the time
// until Ember's pollers have run every one of them (the function's
// successful invocations in ember_invocations_total on /metrics).
//
// held measures the accept path alone: the function's reserved
// concurrency is 0 while the events are sent (Lambda's way to stop a
// function: its events wait, throttled, and are tried again with a
// backoff), so that running them does not take the CPUs the accept path
// uses; then it is released, and the events are run.
func benchEvents(c *benchClient, host, name string, n, conc int, held bool) ([]benchRow, *asyncResult, error) {
	res := &asyncResult{Concurrency: conc}
	payload := []byte(`{"hello":"world"}`)
	event := map[string]string{"X-Amz-Invocation-Type": "Event"}
	path := "/2015-03-31/functions/" + name + "/invocations"
	accept := func() error {
		_, err := c.do("POST", host, path, payload, true, event)
		return err
	}
	before, _, err := invocationsOf(c, host, name)
	if err != nil {
		return nil, nil, err
	}
	concurrency := "/2017-10-31/functions/" + name + "/concurrency"
	if held {
		if _, err := c.do("PUT", host, concurrency, []byte(`{"ReservedConcurrentExecutions":0}`), true, nil); err != nil {
			return nil, nil, err
		}
	}
	warm := conc
	res.Events = n + warm
	start := time.Now()
	for i := 0; i < warm; i++ {
		if err := accept(); err != nil {
			return nil, nil, err
		}
	}
	cpu0 := cpuTime(syscall.RUSAGE_SELF)
	lat, wall, err := measureWarm(n, conc, 0, accept)
	if err != nil {
		return nil, nil, err
	}
	res.AcceptCPUPercent = 100 * (cpuTime(syscall.RUSAGE_SELF) - cpu0).Seconds() / wall.Seconds()
	accepted := time.Now()
	if held {
		if _, err := c.do("DELETE", host, concurrency, nil, true, nil); err != nil {
			return nil, nil, err
		}
		accepted = time.Now()
	}
	deadline := accepted.Add(3 * time.Minute)
	for {
		ok, other, err := invocationsOf(c, host, name)
		if err != nil {
			return nil, nil, err
		}
		if len(other) > 0 {
			return nil, nil, fmt.Errorf("events ended other than in success: %s", strings.Join(other, "; "))
		}
		if ok-before >= float64(res.Events) {
			break
		}
		if time.Now().After(deadline) {
			return nil, nil, fmt.Errorf("%v of %d events run after %v", ok-before, res.Events, time.Since(start))
		}
		time.Sleep(10 * time.Millisecond)
	}
	done := time.Now()
	res.AcceptSeconds = wall.Seconds()
	res.AcceptedPerSecond = float64(n) / wall.Seconds()
	res.DrainSeconds = done.Sub(accepted).Seconds()
	if held {
		return []benchRow{summarize("Ember async accept, the function held (the accept path alone)", conc, lat, wall)}, res, nil
	}
	res.ProcessedSeconds = done.Sub(start).Seconds()
	res.ProcessedPerSecond = float64(res.Events) / res.ProcessedSeconds
	return []benchRow{
		summarize("Ember async accept (Event invoke, durable, to 202)", conc, lat, wall),
		// A throughput only: each event's time to run is not measured.
		{Name: "Ember async processed (echo, first accept to last run)", Concurrency: conc, PerSecond: res.ProcessedPerSecond},
	}, res, nil
}

// invocationsOf reads ember_invocations_total of one function from
// /metrics (open to loopback clients): the successful ones, and the
// lines of the other outcomes.
func invocationsOf(c *benchClient, host, function string) (success float64, other []string, err error) {
	resp, err := c.http.Get("http://" + host + "/metrics")
	if err != nil {
		return 0, nil, err
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		return 0, nil, fmt.Errorf("GET /metrics: %s %v", resp.Status, err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, "ember_invocations_total{") || !strings.Contains(line, `function="`+function+`"`) {
			continue
		}
		var v float64
		if _, err := fmt.Sscanf(line[strings.LastIndexByte(line, ' ')+1:], "%g", &v); err != nil {
			return 0, nil, fmt.Errorf("/metrics: %q: %v", line, err)
		}
		if strings.Contains(line, `outcome="success"`) {
			success += v
		} else if v > 0 {
			other = append(other, line)
		}
	}
	return success, other, nil
}
