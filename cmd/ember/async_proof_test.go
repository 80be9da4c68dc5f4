package main

// The proofs of the asynchronous invocation issue (issue 7): a thousand
// events of which a chosen fraction fail, each ending in exactly one
// outcome after the right number of attempts; and events that expire
// while throttled. The crash proof is in async_crash_test.go.

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"
)

// flaky is the zip of testdata/functions/flaky, an aws-lambda-go function
// whose failures are decided by the event's id (see its doc comment).
func flaky(t *testing.T) []byte {
	return buildOnce(t, "flaky", func() ([]byte, error) { return goBuildZip(t, ".", "./testdata/functions/flaky") })
}

// flakyEvent is the event flaky gets.
type flakyEvent struct {
	ID        int   `json:"id"`
	FailUntil int64 `json:"failUntil,omitempty"`
	MS        int   `json:"ms,omitempty"`
}

// pollUntil polls cond every interval until it holds or timeout passes.
func pollUntil(t *testing.T, what string, timeout, interval time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(interval)
	}
}

// recordsByRequest reads the records that recorder functions got, by the
// request id of the event they tell about.
func recordsByRequest(t *testing.T, srv *emberServer, functions ...string) map[string][]invocationRecord {
	t.Helper()
	out := map[string][]invocationRecord{}
	for _, f := range functions {
		for _, r := range records(t, srv, f) {
			if r.RequestContext.RequestID == "" {
				continue // not a record (a synchronous invoke of the recorder)
			}
			out[r.RequestContext.RequestID] = append(out[r.RequestContext.RequestID], r)
		}
	}
	return out
}

var (
	startLine   = regexp.MustCompile(`^START RequestId: (\S+) `)
	attemptLine = regexp.MustCompile(`^ATTEMPT (\d+) (fail|ok)$`)
)

// attemptLog is what a function's log says about its attempts: START
// lines by request id, and flaky's ATTEMPT lines by event id.
type attemptLog struct {
	starts   map[string]int
	attempts map[int][]string // "fail" or "ok", in log order
	total    int              // START lines
}

func readAttempts(t *testing.T, srv *emberServer, function string) attemptLog {
	t.Helper()
	l := attemptLog{starts: map[string]int{}, attempts: map[int][]string{}}
	for _, e := range groupEvents(t, srv.logsClient(srv.creds("default")), "/aws/lambda/"+function) {
		m := strings.TrimSpace(aws.ToString(e.Message))
		if s := startLine.FindStringSubmatch(m); s != nil {
			l.starts[s[1]]++
			l.total++
		} else if a := attemptLine.FindStringSubmatch(m); a != nil {
			id, _ := strconv.Atoi(a[1])
			l.attempts[id] = append(l.attempts[id], a[2])
		}
	}
	return l
}

// sendEvents sends n events, made by event(i) just before each is sent,
// as Event invokes of function, conc at a time; every one must be
// accepted. It returns the events and their request ids, by index.
func sendEvents(t *testing.T, c *lambda.Client, function string, conc, n int, event func(i int) flakyEvent) ([]flakyEvent, []string) {
	t.Helper()
	events := make([]flakyEvent, n)
	ids := make([]string, n)
	errs := make([]error, n)
	next := make(chan int, n)
	for i := range n {
		next <- i
	}
	close(next)
	var wg sync.WaitGroup
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				events[i] = event(i)
				b, _ := json.Marshal(events[i])
				out, err := c.Invoke(context.Background(), &lambda.InvokeInput{
					FunctionName: aws.String(function), Payload: b, InvocationType: types.InvocationTypeEvent,
				})
				if err == nil && out.StatusCode != 202 {
					err = fmt.Errorf("status %d", out.StatusCode)
				}
				if err != nil {
					errs[i] = err
					continue
				}
				ids[i] = requestIDOf(t, out)
			}
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("event %d was not accepted: %v", i, err)
		}
	}
	return events, ids
}

// A thousand events to an aws-lambda-go function that fails on a chosen
// fraction of them, with a test-scaled retry schedule (retries after 3 s
// and 6 s): one in five always fails and must reach OnFailure with
// RetriesExhausted after exactly 3 attempts; one in five fails until a
// moment that passes before its first retry, and must reach OnSuccess
// after 1 or 2 attempts (as its log says); the rest succeed at once. No
// event is missing, none has two outcomes, and the function's log shows
// exactly the attempts each record counts.
func TestAsyncThousandEventsEndInOneOutcome(t *testing.T) {
	t.Setenv("EMBER_ASYNC_TIME_SCALE", asyncTimeScale)
	srv, c, _ := startInvokeEmber(t)
	ctx := context.Background()
	if _, err := c.CreateFunction(ctx, createInput("flaky", flaky(t))); err != nil {
		t.Fatal(err)
	}
	okARN := createRecorder(t, c, "on-success")
	failARN := createRecorder(t, c, "on-failure")
	// The recorders need few sandboxes (the machine has 2 cores; throttled
	// records wait in the queue and come again).
	for _, f := range []string{"on-success", "on-failure"} {
		if _, err := c.PutFunctionConcurrency(ctx, &lambda.PutFunctionConcurrencyInput{
			FunctionName: aws.String(f), ReservedConcurrentExecutions: aws.Int32(8),
		}); err != nil {
			t.Fatal(err)
		}
	}
	const retries = 2
	putConfig(t, c, &lambda.PutFunctionEventInvokeConfigInput{
		FunctionName:         aws.String("flaky"),
		MaximumRetryAttempts: aws.Int32(retries),
		DestinationConfig:    destinations(okARN, failARN),
	})

	// Warm: the function and the destinations have a sandbox each, so
	// the first events run at once.
	for _, f := range []string{"flaky", "on-success", "on-failure"} {
		if out, _ := invokeJSON(t, c, f, flakyEvent{ID: -3}, false); out.FunctionError != nil {
			t.Fatalf("warming %s: %s", f, out.Payload)
		}
	}

	const n = 1000
	start := time.Now()
	events, ids := sendEvents(t, c, "flaky", 16, n, func(i int) flakyEvent {
		ev := flakyEvent{ID: i}
		if i%5 == 1 {
			// The first retry comes 3 s after the first attempt fails,
			// which is after the event was sent: it succeeds.
			ev.FailUntil = time.Now().Add(3 * time.Second).UnixMilli()
		}
		return ev
	})
	accepted := time.Since(start)
	index := map[string]int{}
	for i, id := range ids {
		if _, dup := index[id]; dup || id == "" {
			t.Fatalf("request id %q of event %d is not unique", id, i)
		}
		index[id] = i
	}

	var recs map[string][]invocationRecord
	pollUntil(t, "every event's outcome", 120*time.Second, 500*time.Millisecond, func() bool {
		recs = recordsByRequest(t, srv, "on-success", "on-failure")
		for _, id := range ids {
			if len(recs[id]) == 0 {
				return false
			}
		}
		return true
	})
	done := time.Since(start)
	// The queue drains (the destinations' own events included): no
	// outcome is still on its way.
	pollUntil(t, "the queue to drain", 60*time.Second, 100*time.Millisecond, func() bool {
		return scrapeMetrics(t, srv, "")["ember_async_queue_depth"] == 0
	})
	recs = recordsByRequest(t, srv, "on-success", "on-failure")

	// The function's log shows every attempt the records count.
	wantStarts := 0
	for _, id := range ids {
		for _, r := range recs[id] {
			wantStarts += r.RequestContext.ApproximateInvokeCount
		}
	}
	var log attemptLog
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		log = readAttempts(t, srv, "flaky")
		if log.total >= wantStarts {
			break
		}
		if time.Now().After(deadline) {
			m := scrapeMetrics(t, srv, "")
			t.Errorf("the function's log shows %d attempts, the records count %d (log events lost %v, cut %v)",
				log.total, wantStarts, m["ember_log_events_lost_total"], m["ember_log_events_cut_total"])
			break
		}
	}

	duplicates, retried, retriedOK := 0, 0, 0
	for _, id := range ids {
		i := index[id]
		rs := recs[id]
		if len(rs) > 1 {
			duplicates += len(rs) - 1
			t.Errorf("event %d (%s) has %d outcomes: %+v", i, id, len(rs), rs)
			continue
		}
		r := rs[0]
		rc := r.RequestContext
		var got flakyEvent
		if err := json.Unmarshal(r.RequestPayload, &got); err != nil || got != events[i] {
			t.Errorf("event %d: record's request payload %s", i, r.RequestPayload)
		}
		if r.Version != "1.0" || !strings.HasSuffix(rc.FunctionArn, ":function:flaky:$LATEST") || r.ResponseContext == nil ||
			r.ResponseContext.StatusCode != 200 || r.ResponseContext.ExecutedVersion != "$LATEST" {
			t.Errorf("event %d: record %+v %+v", i, rc, r.ResponseContext)
			continue
		}
		want := []string{"ok"}
		switch {
		case i%5 == 0:
			want = []string{"fail", "fail", "fail"}
			if rc.Condition != "RetriesExhausted" || rc.ApproximateInvokeCount != retries+1 ||
				r.ResponseContext.FunctionError != "Unhandled" ||
				!strings.Contains(string(r.ResponsePayload), fmt.Sprintf("event %d always fails", i)) {
				t.Errorf("event %d that always fails: %+v %+v %s", i, rc, r.ResponseContext, r.ResponsePayload)
			}
		case i%5 == 1 && rc.ApproximateInvokeCount == 2:
			want = []string{"fail", "ok"}
			retried++
			retriedOK++
			fallthrough
		default:
			if rc.Condition != "Success" || r.ResponseContext.FunctionError != "" ||
				string(r.ResponsePayload) != fmt.Sprintf(`{"id":%d}`, i) {
				t.Errorf("event %d: success record %+v %+v %s", i, rc, r.ResponseContext, r.ResponsePayload)
			}
		}
		if i%5 == 0 {
			retried++
		}
		if rc.ApproximateInvokeCount != len(want) {
			t.Errorf("event %d: %d attempts counted, want %d (%+v)", i, rc.ApproximateInvokeCount, len(want), rc)
		}
		if got := log.starts[id]; got != len(want) {
			t.Errorf("event %d: the function's log has %d START lines, want %d", i, got, len(want))
		}
		if got := strings.Join(log.attempts[i], ","); got != strings.Join(want, ",") {
			t.Errorf("event %d: the function's log shows attempts %q, want %q", i, got, strings.Join(want, ","))
		}
	}
	// Nothing but these events reached the destinations.
	if extra := len(recs) - n; extra != 0 {
		t.Errorf("%d records of events that were never sent", extra)
	}
	t.Logf("%d events accepted in %v (%.0f/s); all outcomes recorded after %v; %d retried (%d of them then succeeded); %d duplicate outcomes",
		n, accepted.Round(time.Millisecond), n/accepted.Seconds(), done.Round(time.Millisecond), retried, retriedOK, duplicates)
	if retriedOK == 0 {
		t.Error("no event failed its first attempt and then succeeded on a retry")
	}
}

// Events that cannot run (the function's reserved concurrency is 0) are
// retried with backoff until their maximum age and then go to OnFailure
// with EventAgeExceeded, without ever having run. (Events that expire
// between function-error retries: TestAsyncMaximumEventAge.)
func TestAsyncEventAgeExceededWhileThrottled(t *testing.T) {
	t.Setenv("EMBER_ASYNC_TIME_SCALE", asyncTimeScale)
	srv, c, _ := startInvokeEmber(t)
	ctx := context.Background()
	if _, err := c.CreateFunction(ctx, createInput("closed", flaky(t))); err != nil {
		t.Fatal(err)
	}
	if _, err := c.PutFunctionConcurrency(ctx, &lambda.PutFunctionConcurrencyInput{
		FunctionName: aws.String("closed"), ReservedConcurrentExecutions: aws.Int32(0),
	}); err != nil {
		t.Fatal(err)
	}
	failARN := createRecorder(t, c, "expired")
	putConfig(t, c, &lambda.PutFunctionEventInvokeConfigInput{
		FunctionName:             aws.String("closed"),
		MaximumEventAgeInSeconds: aws.Int32(60), // 3 s scaled
		DestinationConfig:        destinations("", failARN),
	})
	start := time.Now()
	events, ids := sendEvents(t, c, "closed", 4, 20, func(i int) flakyEvent {
		return flakyEvent{ID: 5*i + 2} // would succeed, if it ran
	})
	var recs map[string][]invocationRecord
	pollUntil(t, "every event to expire", 60*time.Second, 200*time.Millisecond, func() bool {
		recs = recordsByRequest(t, srv, "expired")
		for _, id := range ids {
			if len(recs[id]) == 0 {
				return false
			}
		}
		return true
	})
	t.Logf("%d throttled events expired after %v", len(ids), time.Since(start).Round(time.Millisecond))
	for i, id := range ids {
		rs := recs[id]
		if len(rs) != 1 {
			t.Fatalf("event %d has %d records", i, len(rs))
		}
		r := rs[0]
		var got flakyEvent
		if err := json.Unmarshal(r.RequestPayload, &got); err != nil || got != events[i] {
			t.Errorf("event %d: request payload %s", i, r.RequestPayload)
		}
		// Not before its maximum age (3 s scaled, from its accept, which
		// is after start): the last backoff is cut short, not given up.
		if at, err := time.Parse("2006-01-02T15:04:05.000Z", r.Timestamp); err != nil || at.Before(start.Add(3*time.Second).Truncate(time.Millisecond)) {
			t.Errorf("event %d expired at %s (%v), before its maximum age: %v after the first send", i, r.Timestamp, err, at.Sub(start))
		}
		if r.RequestContext.Condition != "EventAgeExceeded" || r.RequestContext.ApproximateInvokeCount != 0 ||
			r.ResponseContext != nil || len(r.ResponsePayload) != 0 {
			t.Errorf("event %d: record %+v %+v %s", i, r.RequestContext, r.ResponseContext, r.ResponsePayload)
		}
	}
	if n := readAttempts(t, srv, "closed").total; n != 0 {
		t.Fatalf("a function with no concurrency ran %d times", n)
	}
	if len(recs) != len(ids) {
		t.Fatalf("%d records for %d events", len(recs), len(ids))
	}
}
