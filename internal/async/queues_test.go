package async

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/emberfn/ember/internal/invoke"
	"github.com/emberfn/ember/internal/lambdaapi"
	"github.com/emberfn/ember/internal/store"
)

const acct = "123456789012"

// A queue's life: create (idempotent), send, receive (invisible until
// deleted or its visibility timeout passes), delete by receipt handle,
// peek, delete the queue; a queue made again does not see the old one's
// messages.
func TestQueueLifecycle(t *testing.T) {
	q, stop := openTest(t, t.TempDir(), Config{})
	defer stop()
	ctx := context.Background()
	m, created, err := q.createQueue(ctx, acct, "jobs", 0, 1)
	if err != nil || !created || m.Retention != DefaultQueueRetention || m.Visibility != 1 {
		t.Fatalf("create: %+v %v %v", m, created, err)
	}
	if !strings.HasPrefix(m.stream(), "EMBER_QUEUE_"+acct+"_") || strings.Contains(m.stream(), "jobs") {
		t.Fatalf("stream name %s", m.stream())
	}
	if again, created, err := q.createQueue(ctx, acct, "jobs", 0, 0); err != nil || created || again.ID != m.ID {
		t.Fatalf("create again: %+v %v %v", again, created, err)
	}
	if _, _, err := q.createQueue(ctx, acct, "jobs", 0, 5); !errors.Is(err, errQueueConflict) {
		t.Fatalf("create with other attributes: %v", err)
	}
	if _, _, err := q.createQueue(ctx, acct, "bad.name", 0, 0); err == nil {
		t.Fatal("a queue name with a dot was accepted")
	}
	if _, _, err := q.createQueue(ctx, "999999999999", "jobs", 0, 0); err != nil {
		t.Fatal(err)
	}
	list, err := q.listQueues(ctx, acct)
	if err != nil || len(list) != 1 || list[0].Name != "jobs" {
		t.Fatalf("list: %+v %v", list, err)
	}

	for i, body := range []string{`{"n":1}`, `{"n":2}`, `{"n":3}`} {
		attrs := map[string]string(nil)
		if i == 0 {
			attrs = map[string]string{AttrRequestID: "r1", AttrErrorMessage: "line 1\nline 2"}
		}
		if err := q.send(ctx, m, []byte(body), attrs, "msg-"+body); err != nil {
			t.Fatal(err)
		}
	}
	// A repeated send (a redelivered hand-over) is stored once.
	if err := q.send(ctx, m, []byte(`{"n":3}`), nil, `msg-{"n":3}`); err != nil {
		t.Fatal(err)
	}
	if v, inFlight, err := q.queueCounts(ctx, m); err != nil || v != 3 || inFlight != 0 {
		t.Fatalf("counts %d %d %v", v, inFlight, err)
	}
	got, err := q.receive(ctx, m, 2, 0)
	if err != nil || len(got) != 2 || got[0].Body != `{"n":1}` || got[1].Body != `{"n":2}` {
		t.Fatalf("receive: %+v %v", got, err)
	}
	if got[0].MessageAttributes[AttrErrorMessage] != "line 1\nline 2" || got[0].MessageAttributes[AttrRequestID] != "r1" ||
		got[0].Attributes["ApproximateReceiveCount"] != "1" || got[0].Attributes["SentTimestamp"] == "" || got[0].MessageID == "" {
		t.Fatalf("first message: %+v", got[0])
	}
	if v, inFlight, _ := q.queueCounts(ctx, m); v != 1 || inFlight != 2 {
		t.Fatalf("counts after receive %d %d", v, inFlight)
	}
	// The third only: the first two are invisible.
	third, err := q.receive(ctx, m, 10, 0)
	if err != nil || len(third) != 1 || third[0].Body != `{"n":3}` {
		t.Fatalf("second receive: %+v %v", third, err)
	}
	if failed := q.deleteMessages(ctx, m, []string{got[0].ReceiptHandle, third[0].ReceiptHandle}); len(failed) != 0 {
		t.Fatalf("delete failed for %v", failed)
	}
	// Deleting again is harmless.
	if failed := q.deleteMessages(ctx, m, []string{got[0].ReceiptHandle}); len(failed) != 0 {
		t.Fatalf("second delete failed for %v", failed)
	}
	// The second was not deleted: after the visibility timeout (1 s) it
	// is received again, with its receive count.
	var again []Message
	waitUntil(t, "the undeleted message again", func() bool {
		again, err = q.receive(ctx, m, 10, time.Second)
		return err == nil && len(again) == 1
	})
	if again[0].Body != `{"n":2}` || again[0].Attributes["ApproximateReceiveCount"] != "2" {
		t.Fatalf("received again: %+v", again[0])
	}
	// A peek lists it without receiving it.
	peeked, err := q.peek(ctx, m, 0, 10)
	if err != nil || len(peeked) != 1 || peeked[0].Body != `{"n":2}` || peeked[0].ReceiptHandle != "" {
		t.Fatalf("peek: %+v %v", peeked, err)
	}
	if failed := q.deleteMessages(ctx, m, []string{again[0].ReceiptHandle}); len(failed) != 0 {
		t.Fatal("delete failed")
	}
	if peeked, _ := q.peek(ctx, m, 0, 10); len(peeked) != 0 {
		t.Fatalf("peek of an empty queue: %+v", peeked)
	}

	// Long polling returns as soon as a message comes: the message is
	// sent once the receive's pull waits on the queue's consumer.
	type received struct {
		msgs []Message
		err  error
	}
	polled := make(chan received, 1)
	start := time.Now()
	go func() {
		msgs, err := q.receive(ctx, m, 10, 10*time.Second)
		polled <- received{msgs, err}
	}()
	cons, err := q.js.Consumer(ctx, m.stream(), queueConsumer)
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the long poll to wait on the queue", func() bool {
		info, err := cons.Info(ctx)
		return err == nil && info.NumWaiting > 0
	})
	if err := q.send(context.Background(), m, []byte(`"late"`), nil, "late"); err != nil {
		t.Fatal(err)
	}
	late := <-polled
	if late.err != nil || len(late.msgs) != 1 || time.Since(start) > 5*time.Second {
		t.Fatalf("long poll: %+v %v after %v", late.msgs, late.err, time.Since(start))
	}

	if err := q.deleteQueue(ctx, acct, "jobs"); err != nil {
		t.Fatal(err)
	}
	if _, err := q.lookupQueue(ctx, acct, "jobs"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("lookup after delete: %v", err)
	}
	if _, err := q.js.Stream(ctx, m.stream()); !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Fatalf("the stream outlived its queue: %v", err)
	}
	if err := q.deleteQueue(ctx, acct, "jobs"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}
	m2, created, err := q.createQueue(ctx, acct, "jobs", 0, 0)
	if err != nil || !created || m2.ID == m.ID {
		t.Fatalf("create after delete: %+v %v", m2, err)
	}
	if p, _ := q.peek(ctx, m2, 0, 10); len(p) != 0 {
		t.Fatalf("a new queue has old messages: %+v", p)
	}
}

// Receipt handles name one queue's messages only.
func TestReceiptHandles(t *testing.T) {
	m := queueMeta{Account: acct, Name: "q", ID: "0011223344556677"}
	enc := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	good := []string{
		"$JS.ACK." + m.stream() + ".reader.1.2.3.1700000000000000000.0",
		"$JS.ACK._.ABCDEF." + m.stream() + ".reader.1.2.3.1700000000000000000.0.xyz",
	}
	for _, s := range good {
		if got, ok := ackSubject(m, enc(s)); !ok || got != s {
			t.Errorf("refused %s", s)
		}
	}
	bad := []string{
		enc("$JS.ACK.EMBER_QUEUE_999999999999_0011223344556677.reader.1.2.3.4.0"),
		enc("$JS.ACK." + m.stream() + ".other.1.2.3.4.0"),
		enc("$JS.ACK." + m.stream() + ".reader.1.2.3.*.0"),
		enc("$JS.ACK." + m.stream() + ".reader.>"),
		enc("$JS.API.STREAM.DELETE." + m.stream()),
		enc("$JS.ACK." + m.stream() + ".reader.a.2.3.4.0"),
		enc("$JS.ACK._.H." + m.stream() + ".reader.1.2.3.4"),
		enc("$JS.ACK." + m.stream() + ".reader.1.2.3.4.0.5"),
		enc("$JS.ACK..." + m.stream() + ".reader.1.2.3.4.0"),
		"not base64!",
		"",
	}
	for _, h := range bad {
		if _, ok := ackSubject(m, h); ok {
			t.Errorf("accepted %q", h)
		}
	}
}

func TestQueueARNs(t *testing.T) {
	arn := QueueARN("us-east-1", acct, "my-queue_1")
	if arn != "arn:aws:sqs:us-east-1:123456789012:my-queue_1" {
		t.Fatal(arn)
	}
	if r, a, n, ok := ParseQueueARN(arn); !ok || r != "us-east-1" || a != acct || n != "my-queue_1" {
		t.Fatal(r, a, n, ok)
	}
	for _, bad := range []string{"arn:aws:sqs:us-east-1:123456789012:a.fifo", "arn:aws:sns:us-east-1:123456789012:t",
		"arn:aws:sqs:us-east-1:123456789012", "arn:aws:sqs::123456789012:q", "arn:aws:sqs:us-east-1:1.2:q",
		"arn:aws:sqs:us-east-1:123456789012:" + strings.Repeat("x", 81)} {
		if _, _, _, ok := ParseQueueARN(bad); ok {
			t.Errorf("parsed %s", bad)
		}
	}
}

// fakeFunctions is the store's function lookups.
type fakeFunctions struct {
	mu        sync.Mutex
	functions map[string]store.Function // name -> $LATEST
	versions  map[string]store.Function // name:version
	aliases   map[string]store.Alias    // name:alias
}

func (f *fakeFunctions) GetFunction(_ context.Context, account, name string) (store.Revision, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn, ok := f.functions[name]
	if !ok {
		return store.Revision{}, store.ErrNotFound
	}
	return store.Revision{Function: fn, Rev: 1}, nil
}

func (f *fakeFunctions) GetVersion(_ context.Context, account, name, version string) (store.Function, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn, ok := f.versions[name+":"+version]
	if !ok {
		return store.Function{}, store.ErrNotFound
	}
	return fn, nil
}

func (f *fakeFunctions) GetAlias(_ context.Context, account, function, alias string) (store.AliasRevision, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	a, ok := f.aliases[function+":"+alias]
	if !ok {
		return store.AliasRevision{}, store.ErrNotFound
	}
	return store.AliasRevision{Alias: a, Rev: 1}, nil
}

func putTestConfig(t *testing.T, q *Queue, name, qualifier string, c EventInvokeConfig) {
	t.Helper()
	b, _ := json.Marshal(c)
	if _, err := q.kv.Put(context.Background(), configKey(acct, name, qualifier), b); err != nil {
		t.Fatal(err)
	}
}

// waitMessages peeks at a queue until it holds n messages.
func waitMessages(t *testing.T, q *Queue, m queueMeta, n int) []Message {
	t.Helper()
	var got []Message
	waitUntil(t, "messages in queue "+m.Name, func() bool {
		var err error
		got, err = q.peek(context.Background(), m, 0, 100)
		return err == nil && len(got) >= n
	})
	if len(got) != n {
		t.Fatalf("queue %s holds %d messages; want %d", m.Name, len(got), n)
	}
	return got
}

// Outcomes go to destination queues as Lambda's invocation records; a
// record for a queue that is gone is dropped and counted.
func TestQueueDestinations(t *testing.T) {
	q, stop := openTest(t, t.TempDir(), Config{TimeScale: 0.01})
	defer stop()
	ctx := context.Background()
	okQ, _, err := q.createQueue(ctx, acct, "ok", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	failQ, _, err := q.createQueue(ctx, acct, "fail", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	putTestConfig(t, q, "fn", "", EventInvokeConfig{MaximumRetryAttempts: new(1), DestinationConfig: &DestinationConfig{
		OnSuccess: &Destination{Destination: new(QueueARN("us-east-1", acct, "ok"))},
		OnFailure: &Destination{Destination: new(QueueARN("us-east-1", acct, "fail"))},
	}})
	putTestConfig(t, q, "orphan", "", EventInvokeConfig{MaximumRetryAttempts: new(0), DestinationConfig: &DestinationConfig{
		OnFailure: &Destination{Destination: new(QueueARN("us-east-1", acct, "gone"))},
	}})
	inv := &fakeInvoker{calls: map[string]int{}, answer: func(id string, n int) (*invoke.Result, error) {
		if strings.HasPrefix(id, "bad") {
			return &invoke.Result{FunctionError: "Unhandled", Payload: []byte(`{"errorMessage":"no"}`)}, nil
		}
		return &invoke.Result{Payload: []byte(`{"fine":true}`)}, nil
	}}
	for _, e := range []struct{ fn, id string }{{"fn", "good1"}, {"fn", "bad1"}, {"orphan", "bad2"}} {
		if err := q.Enqueue(ctx, acct, e.fn, "", []byte(`{"x":"`+e.id+`"}`), e.id, ""); err != nil {
			t.Fatal(err)
		}
	}
	defer run(t, q, inv)()
	var rec record
	ok := waitMessages(t, q, okQ, 1)
	if err := json.Unmarshal([]byte(ok[0].Body), &rec); err != nil {
		t.Fatal(err)
	}
	if rec.RequestContext.Condition != "Success" || rec.RequestContext.RequestID != "good1" || rec.RequestContext.ApproximateInvokeCount != 1 ||
		string(rec.RequestPayload) != `{"x":"good1"}` || string(rec.ResponsePayload) != `{"fine":true}` ||
		rec.RequestContext.FunctionARN != "arn:aws:lambda:us-east-1:123456789012:function:fn:$LATEST" {
		t.Fatalf("success record %s", ok[0].Body)
	}
	fail := waitMessages(t, q, failQ, 1)
	rec = record{}
	if err := json.Unmarshal([]byte(fail[0].Body), &rec); err != nil {
		t.Fatal(err)
	}
	if rec.RequestContext.Condition != "RetriesExhausted" || rec.RequestContext.ApproximateInvokeCount != 2 ||
		rec.ResponseContext == nil || rec.ResponseContext.FunctionError != "Unhandled" || string(rec.ResponsePayload) != `{"errorMessage":"no"}` {
		t.Fatalf("failure record %s", fail[0].Body)
	}
	// A record is readable in its queue just before the poller counts it.
	waitUntil(t, "the record for a missing queue to be dropped, both others counted", func() bool {
		s := q.Stats()
		return s.DestinationFailures == 1 && s.ToQueue == 2
	})
	if s := q.Stats(); s.ToQueue != 2 || s.Dropped != 1 {
		t.Fatalf("stats %+v", s)
	}
	waitUntil(t, "an empty event queue", func() bool { n, _, _ := q.Depth(ctx); return n == 0 })
}

// Events that fail for good without OnFailure go to the dead-letter queue
// of the version that ran: the payload, with RequestID, ErrorCode and
// ErrorMessage.
func TestDeadLetterQueue(t *testing.T) {
	fns := &fakeFunctions{
		functions: map[string]store.Function{"fn": {Name: "fn", DeadLetterTarget: QueueARN("us-east-1", acct, "dlq")}, "plain": {Name: "plain"}},
		versions:  map[string]store.Function{"fn:1": {Name: "fn", Version: "1", DeadLetterTarget: QueueARN("us-east-1", acct, "dlq1")}},
		aliases:   map[string]store.Alias{"fn:live": {Name: "live", FunctionVersion: "1"}},
	}
	q, stop := openTest(t, t.TempDir(), Config{TimeScale: 0.01, Functions: fns})
	defer stop()
	ctx := context.Background()
	dlq, _, err := q.createQueue(ctx, acct, "dlq", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	dlq1, _, err := q.createQueue(ctx, acct, "dlq1", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, qual := range []string{"", "live"} {
		putTestConfig(t, q, "fn", qual, EventInvokeConfig{MaximumRetryAttempts: new(0)})
	}
	putTestConfig(t, q, "plain", "", EventInvokeConfig{MaximumRetryAttempts: new(0)})
	inv := invokerFunc(func(ctx context.Context, account, name, qualifier string, payload []byte, id, _ string) (*invoke.Result, string, error) {
		switch {
		case id == "throttled":
			return nil, "", throttle
		case qualifier == "live":
			return &invoke.Result{FunctionError: "Unhandled", Payload: []byte(`{"errorMessage":"on version 1"}`)}, "1", nil
		}
		return &invoke.Result{FunctionError: "Unhandled", Payload: []byte(`{"errorMessage":"` + strings.Repeat("é", 700) + `"}`)}, "$LATEST", nil
	})
	if err := q.Enqueue(ctx, acct, "fn", "", []byte(`{"a":1}`), "latest", ""); err != nil {
		t.Fatal(err)
	}
	if err := q.Enqueue(ctx, acct, "fn", "live", []byte(`{"a":2}`), "alias", ""); err != nil {
		t.Fatal(err)
	}
	if err := q.Enqueue(ctx, acct, "plain", "", []byte(`{}`), "nodlq", ""); err != nil {
		t.Fatal(err)
	}
	defer run(t, q, inv)()
	got := waitMessages(t, q, dlq, 1)[0]
	a := got.MessageAttributes
	if got.Body != `{"a":1}` || a[AttrRequestID] != "latest" || a[AttrErrorCode] != "200" ||
		len(a[AttrErrorMessage]) > maxErrorMessage || !strings.HasPrefix(a[AttrErrorMessage], "éé") {
		t.Fatalf("dead-letter message %+v", got)
	}
	got = waitMessages(t, q, dlq1, 1)[0]
	if got.Body != `{"a":2}` || got.MessageAttributes[AttrErrorMessage] != "on version 1" {
		t.Fatalf("dead-letter message of version 1 %+v", got)
	}
	waitUntil(t, "the event without a dead-letter queue to be dropped", func() bool { return q.Stats().Dropped == 1 })

	// An event that expires throttled: ErrorCode 429.
	putTestConfig(t, q, "fn", "", EventInvokeConfig{MaximumEventAgeInSeconds: new(60)})
	if err := q.Enqueue(ctx, acct, "fn", "", []byte(`{"a":3}`), "throttled", ""); err != nil {
		t.Fatal(err)
	}
	msgs := waitMessages(t, q, dlq, 2)
	if msgs[1].Body != `{"a":3}` || msgs[1].MessageAttributes[AttrErrorCode] != "429" || msgs[1].MessageAttributes[AttrErrorMessage] != "Rate exceeded" {
		t.Fatalf("expired dead-letter message %+v", msgs[1])
	}
	if s := q.Stats(); s.DeadLettered != 3 {
		t.Fatalf("stats %+v", s)
	}
}

// fakeWatcher delivers the store's changes by hand.
type fakeWatcher struct {
	*fakeFunctions
	ready                        sync.WaitGroup
	functions, versions, aliases chan [3]string // deleted: account, name, qualifier
}

func (w *fakeWatcher) WatchFunctions(ctx context.Context, _ bool, fn func(account, name string, f *store.Function)) error {
	w.ready.Done()
	for {
		select {
		case <-ctx.Done():
			return nil
		case d := <-w.functions:
			fn(d[0], d[1], nil)
		}
	}
}

func (w *fakeWatcher) WatchVersions(ctx context.Context, fn func(account, name, version string, f *store.Function)) error {
	w.ready.Done()
	for {
		select {
		case <-ctx.Done():
			return nil
		case d := <-w.versions:
			fn(d[0], d[1], d[2], nil)
		}
	}
}

func (w *fakeWatcher) WatchAliases(ctx context.Context, fn func(account, function, alias string, a *store.Alias)) error {
	w.ready.Done()
	for {
		select {
		case <-ctx.Done():
			return nil
		case d := <-w.aliases:
			fn(d[0], d[1], d[2], nil)
		}
	}
}

// The configs of deleted functions, versions and aliases go, also those
// deleted while Ember was not running.
func TestForgetDeleted(t *testing.T) {
	q, stop := openTest(t, t.TempDir(), Config{})
	defer stop()
	ctx, cancel := context.WithCancel(context.Background())
	fns := &fakeFunctions{
		functions: map[string]store.Function{"fn": {Name: "fn"}, "other": {Name: "other"}},
		versions:  map[string]store.Function{"fn:1": {Name: "fn", Version: "1"}, "fn:2": {Name: "fn", Version: "2"}},
		aliases:   map[string]store.Alias{"fn:live": {Name: "live"}, "fn:test": {Name: "test"}},
	}
	for _, k := range [][2]string{{"fn", ""}, {"fn", "1"}, {"fn", "2"}, {"fn", "live"}, {"fn", "test"}, {"fn", "3"}, {"fn", "old"}, {"gone", ""}, {"other", ""}} {
		putTestConfig(t, q, k[0], k[1], EventInvokeConfig{MaximumRetryAttempts: new(1)})
	}
	w := &fakeWatcher{fakeFunctions: fns, functions: make(chan [3]string), versions: make(chan [3]string), aliases: make(chan [3]string)}
	w.ready.Add(3)
	done := make(chan error, 1)
	go func() { done <- q.ForgetDeleted(ctx, w) }()
	w.ready.Wait()
	keys := func() []string {
		k, _ := q.configKeys(context.Background(), acct, "fn")
		o, _ := q.configKeys(context.Background(), acct, "other")
		g, _ := q.configKeys(context.Background(), acct, "gone")
		return append(append(k, o...), g...)
	}
	has := func(want ...string) func() bool {
		return func() bool { return strings.Join(keys(), " ") == strings.Join(want, " ") }
	}
	p := acct + ".fn."
	// Deleted while not running: version 3, alias old, function gone.
	waitUntil(t, "the sweep", has(p+"1", p+"2", p+"=LATEST", p+"live", p+"test", acct+".other.=LATEST"))
	w.versions <- [3]string{acct, "fn", "2"}
	w.aliases <- [3]string{acct, "fn", "test"}
	waitUntil(t, "a deleted version's and alias's configs to go", has(p+"1", p+"=LATEST", p+"live", acct+".other.=LATEST"))
	w.functions <- [3]string{acct, "fn", ""}
	waitUntil(t, "a deleted function's configs to go", has(acct+".other.=LATEST"))
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// A queue stream that no registration names (a crash between the two) is
// removed at a later start, once it is old enough not to be a creation in
// progress.
func TestOrphanQueueStreams(t *testing.T) {
	dir := t.TempDir()
	q, stop := openTest(t, dir, Config{})
	ctx := context.Background()
	kept, _, err := q.createQueue(ctx, acct, "kept", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	orphan, _, err := q.createQueue(ctx, acct, "orphan", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := q.queues.Purge(ctx, queueKey(acct, "orphan")); err != nil {
		t.Fatal(err)
	}
	stop()

	q, stop = openTest(t, dir, Config{})
	if _, err := q.js.Stream(ctx, orphan.stream()); err != nil {
		t.Fatalf("a young orphan was removed: %v", err)
	}
	stop()

	later := func() time.Time { return time.Now().Add(orphanAge + time.Minute) }
	q, stop = openTest(t, dir, Config{Now: later})
	defer stop()
	if _, err := q.js.Stream(ctx, orphan.stream()); !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Fatalf("the orphan is still there: %v", err)
	}
	if _, err := q.js.Stream(ctx, kept.stream()); err != nil {
		t.Fatalf("a registered queue's stream was removed: %v", err)
	}
}

// Dead-letter targets must be existing queues of the same account and
// region.
func TestCheckDeadLetterTarget(t *testing.T) {
	q, stop := openTest(t, t.TempDir(), Config{})
	defer stop()
	ctx := context.Background()
	if _, _, err := q.createQueue(ctx, acct, "dlq", 0, 0); err != nil {
		t.Fatal(err)
	}
	if err := q.CheckDeadLetterTarget(ctx, acct, QueueARN("us-east-1", acct, "dlq")); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{QueueARN("us-east-1", acct, "nope"), QueueARN("us-west-2", acct, "dlq"),
		QueueARN("us-east-1", "999999999999", "dlq"), "arn:aws:sns:us-east-1:123456789012:topic", "dlq"} {
		err := q.CheckDeadLetterTarget(ctx, acct, bad)
		if le := lambdaapi.AsError(err); err == nil || le.Type != lambdaapi.InvalidParameterValue {
			t.Errorf("%s: %v", bad, err)
		}
	}
}

// A receipt handle is untrusted input: whatever it is, it never names a
// subject outside the queue's own consumer's acks.
func FuzzReceiptHandle(f *testing.F) {
	m := queueMeta{Account: acct, Name: "q", ID: "0011223344556677"}
	for _, s := range []string{"$JS.ACK." + m.stream() + ".reader.1.2.3.4.0", "$JS.ACK._.H." + m.stream() + ".reader.1.2.3.4.0.t", "$JS.API.>"} {
		f.Add(base64.RawURLEncoding.EncodeToString([]byte(s)))
	}
	f.Fuzz(func(t *testing.T, handle string) {
		s, ok := ackSubject(m, handle)
		if !ok {
			return
		}
		if !strings.HasPrefix(s, "$JS.ACK.") || !strings.Contains(s, "."+m.stream()+".reader.") || strings.ContainsAny(s, "*> \r\n") {
			t.Fatalf("accepted %q", s)
		}
	})
}
