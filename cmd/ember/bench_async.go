package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// asyncBenchConfig says what benchAsync measures.
type asyncBenchConfig struct {
	// Function is the name of the function benchAsync creates (default
	// "async-echo"); it must not exist yet.
	Function string
	// Events is how many Event invokes are sent (default 2000).
	Events int
	// Concurrency is how many are in flight at once (default 16).
	Concurrency int
	// Timeout bounds the wait for the events to run (default 5 min).
	Timeout time.Duration
}

// asyncBenchResult is what benchAsync measured.
type asyncBenchResult struct {
	Events, Concurrency int
	// AcceptWall is the time the Event invokes took, from the first sent
	// to the last 202; AcceptedPerSecond is Events / AcceptWall.
	AcceptWall        time.Duration
	AcceptedPerSecond float64
	// AcceptP50 and AcceptP99 are the latencies of one Event invoke (to
	// its 202: the event is stored durably).
	AcceptP50, AcceptP99 time.Duration
	// ProcessWall is the time from the first event sent until the
	// function ran every event; ProcessedPerSecond is Events /
	// ProcessWall (acceptance and processing overlap, as in use).
	ProcessWall        time.Duration
	ProcessedPerSecond float64
	// Sandboxes is how many the function had when the last event ran.
	Sandboxes int
}

// benchAsync measures asynchronous invocations on a running Ember at
// baseURL ("http://host:port") with an account's credentials: it creates
// a provided.al2023 function from echoZip (a function that answers its
// event, such as testdata/functions/probe), sends cfg.Events SigV4-signed
// Event invokes (X-Amz-Invocation-Type: Event) cfg.Concurrency at a time,
// and waits until the function has run every one, as Ember's /metrics
// (ember_invocations_total, read from loopback) counts them. Every invoke
// must answer 202 and every run must succeed.
func benchAsync(ctx context.Context, baseURL string, creds aws.Credentials, echoZip []byte, cfg asyncBenchConfig) (asyncBenchResult, error) {
	if cfg.Function == "" {
		cfg.Function = "async-echo"
	}
	if cfg.Events <= 0 {
		cfg.Events = 2000
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 16
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Minute
	}
	res := asyncBenchResult{Events: cfg.Events, Concurrency: cfg.Concurrency}
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: cfg.Concurrency}, Timeout: time.Minute}
	defer hc.CloseIdleConnections()
	signer := v4.NewSigner()
	call := func(path string, body []byte, header map[string]string) (*http.Response, []byte, error) {
		req, err := http.NewRequestWithContext(ctx, "POST", baseURL+path, bytes.NewReader(body))
		if err != nil {
			return nil, nil, err
		}
		req.Header.Set("Content-Type", "application/json")
		for k, v := range header {
			req.Header.Set(k, v)
		}
		sum := sha256.Sum256(body)
		if err := signer.SignHTTP(ctx, creds, req, hex.EncodeToString(sum[:]), "lambda", "us-east-1", time.Now()); err != nil {
			return nil, nil, err
		}
		resp, err := hc.Do(req)
		if err != nil {
			return nil, nil, err
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp, b, nil
	}

	create, _ := json.Marshal(map[string]any{"FunctionName": cfg.Function, "Runtime": "provided.al2023",
		"Handler": "bootstrap", "Code": map[string]any{"ZipFile": echoZip}})
	if resp, b, err := call("/2015-03-31/functions", create, nil); err != nil || resp.StatusCode != 201 {
		return res, fmt.Errorf("creating %s: %v %s", cfg.Function, err, b)
	}
	before, _, err := asyncBenchRuns(ctx, hc, baseURL, cfg.Function)
	if err != nil {
		return res, err
	}

	invoke := "/2015-03-31/functions/" + cfg.Function + "/invocations"
	payload := []byte(`{"hello":"world"}`)
	lat := make([]time.Duration, cfg.Events)
	next := make(chan int, cfg.Events)
	for i := range cfg.Events {
		next <- i
	}
	close(next)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	start := time.Now()
	for range cfg.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				t := time.Now()
				resp, b, err := call(invoke, payload, map[string]string{"X-Amz-Invocation-Type": "Event"})
				if err == nil && resp.StatusCode != http.StatusAccepted {
					err = fmt.Errorf("an Event invoke answered %s %s", resp.Status, b)
				}
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					return
				}
				lat[i] = time.Since(t)
			}
		}()
	}
	wg.Wait()
	res.AcceptWall = time.Since(start)
	if firstErr != nil {
		return res, firstErr
	}
	res.AcceptedPerSecond = float64(cfg.Events) / res.AcceptWall.Seconds()
	slices.Sort(lat)
	res.AcceptP50, res.AcceptP99 = lat[len(lat)/2], lat[(len(lat)-1)*99/100]

	deadline := time.Now().Add(cfg.Timeout)
	for {
		runs, failed, err := asyncBenchRuns(ctx, hc, baseURL, cfg.Function)
		if err != nil {
			return res, err
		}
		if failed > 0 {
			return res, fmt.Errorf("%d runs of %s did not succeed", failed, cfg.Function)
		}
		if runs-before >= cfg.Events {
			res.ProcessWall = time.Since(start)
			break
		}
		if time.Now().After(deadline) {
			return res, fmt.Errorf("%d of %d events ran within %v", runs-before, cfg.Events, cfg.Timeout)
		}
		select {
		case <-ctx.Done():
			return res, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	res.ProcessedPerSecond = float64(cfg.Events) / res.ProcessWall.Seconds()
	m, err := asyncBenchMetrics(ctx, hc, baseURL)
	if err != nil {
		return res, err
	}
	for k, v := range m {
		if strings.HasPrefix(k, "ember_sandboxes{") {
			res.Sandboxes += int(v)
		}
	}
	return res, nil
}

// asyncBenchRuns reads how many times function ran successfully, and how
// many times it failed (a function error or a timeout), from /metrics.
func asyncBenchRuns(ctx context.Context, hc *http.Client, baseURL, function string) (ok, failed int, err error) {
	m, err := asyncBenchMetrics(ctx, hc, baseURL)
	if err != nil {
		return 0, 0, err
	}
	for k, v := range m {
		if !strings.HasPrefix(k, "ember_invocations_total{") || !strings.Contains(k, `function="`+function+`"`) {
			continue
		}
		switch {
		case strings.Contains(k, `outcome="success"`):
			ok += int(v)
		case strings.Contains(k, `outcome="function_error"`), strings.Contains(k, `outcome="timeout"`):
			failed += int(v)
		}
	}
	return ok, failed, nil
}

// asyncBenchMetrics reads Ember's /metrics (open to loopback clients).
func asyncBenchMetrics(ctx context.Context, hc *http.Client, baseURL string) (map[string]float64, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", baseURL+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /metrics: %s", resp.Status)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil && i > 0 {
			out[line[:i]] = v
		}
	}
	return out, sc.Err()
}
