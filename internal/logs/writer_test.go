package logs_test

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"

	"github.com/emberfn/ember/internal/logs"
	"github.com/emberfn/ember/internal/natsd"
)

// fakePutter records batches; it can be made to block or fail.
type fakePutter struct {
	mu      sync.Mutex
	batches []logs.Batch
	gate    chan struct{} // if set, Put waits for it
	fail    int           // Puts that fail before any succeeds
	calls   int
}

func (f *fakePutter) Put(ctx context.Context, bs []logs.Batch) ([]logs.Batch, error) {
	f.mu.Lock()
	gate := f.gate
	f.calls++
	f.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return bs, ctx.Err()
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail > 0 {
		f.fail--
		return bs, errors.New("nats is down")
	}
	f.batches = append(f.batches, bs...)
	return nil, nil
}

func (f *fakePutter) messages() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, b := range f.batches {
		for _, e := range b.Events {
			out = append(out, strings.TrimSuffix(e.Message, "\n"))
		}
	}
	return out
}

func ev(msg string) logs.Event { return logs.Event{Time: time.Now(), Message: msg} }

func TestBufferFullNeverBlocksAndIsReported(t *testing.T) {
	p := &fakePutter{gate: make(chan struct{})}
	w := logs.NewWriter(logs.WriterConfig{Store: p, MaxBuffer: 10 * (26 + 10), FlushInterval: time.Hour})
	defer w.Close(context.Background())
	// The first flush takes what is buffered and blocks in Put.
	w.Append(alice, group, streamA, ev("first 0000"))
	flushed := make(chan error, 1)
	go func() { flushed <- w.Flush(context.Background()) }()
	waitFor(t, "the flush to start", func() bool { p.mu.Lock(); defer p.mu.Unlock(); return p.calls == 1 })
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 100 {
			w.Append(alice, group, streamA, ev(fmt.Sprintf("line %04d", i)))
		}
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Append blocked while the store was stuck")
	}
	if st := w.Stats(); st.Lost != 91 { // 9 fit beside the one being stored
		t.Fatalf("stats %+v; want 91 lost", st)
	}
	close(p.gate)
	if err := <-flushed; err != nil {
		t.Fatal(err)
	}
	// The next flush stores what fitted and the line that says what did not.
	if err := w.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	w.Append(alice, group, streamA, ev("after"))
	if err := w.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := p.messages()
	want := []string{"first 0000", "line 0000", "line 0008", "EMBER: 91 log events (819 bytes) were lost here: the log buffer of this Ember node was full", "after"}
	if len(got) != 12 || got[0] != want[0] || got[1] != want[1] || got[9] != want[2] || got[10] != want[3] || got[11] != want[4] {
		t.Fatalf("stored %q", got)
	}
	if st := w.Stats(); st.Stored != 12 || st.Lost != 91 {
		t.Fatalf("stats %+v", st)
	}
}

func TestFailedPutsAreRetriedInOrder(t *testing.T) {
	p := &fakePutter{fail: 2}
	w := logs.NewWriter(logs.WriterConfig{Store: p, FlushInterval: time.Hour})
	defer w.Close(context.Background())
	w.Append(alice, group, streamA, ev("1"), ev("2"))
	_ = w.Flush(context.Background()) // fails
	w.Append(alice, group, streamA, ev("3"))
	_ = w.Flush(context.Background()) // fails
	_ = w.Flush(context.Background())
	if got := strings.Join(p.messages(), ","); got != "1,2,3" {
		t.Fatalf("stored %s", got)
	}
	if st := w.Stats(); st.Stored != 3 || st.Lost != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestCloseStoresWhatIsBuffered(t *testing.T) {
	p := &fakePutter{}
	w := logs.NewWriter(logs.WriterConfig{Store: p, FlushInterval: time.Hour})
	w.Append(alice, group, streamA, ev("last words"))
	if err := w.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	w.Append(alice, group, streamA, ev("too late"))
	if got := strings.Join(p.messages(), ","); got != "last words" {
		t.Fatalf("stored %s", got)
	}
	if st := w.Stats(); st.Lost != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestFlushInterval(t *testing.T) {
	p := &fakePutter{}
	w := logs.NewWriter(logs.WriterConfig{Store: p, FlushInterval: 10 * time.Millisecond})
	defer w.Close(context.Background())
	w.Append(alice, group, streamA, ev("soon"))
	waitFor(t, "the periodic flush", func() bool { return len(p.messages()) == 1 })
}

func TestInvocationOutputIsBounded(t *testing.T) {
	p := &fakePutter{}
	w := logs.NewWriter(logs.WriterConfig{Store: p, FlushInterval: time.Hour, MaxInvocationBytes: 20})
	defer w.Close(context.Background())
	s := w.Open(alice, group, streamA)
	now := time.Now()
	s.Begin()
	s.System(now, "START\n")
	for i := range 5 {
		s.Write(now, fmt.Sprintf("out %d\n", i)) // 6 bytes each: three fit
	}
	s.System(now, "END\n")
	s.Begin()
	s.System(now, "START\n")
	s.Write(now, "out again\n")
	s.Write(now, strings.Repeat("x", 30)+"\n")
	s.Close()
	_ = w.Flush(context.Background())
	want := []string{"START", "out 0", "out 1", "out 2",
		"EMBER: 2 lines (12 bytes) of this invocation's output were dropped: it wrote more than 20 bytes", "END",
		"START", "out again",
		"EMBER: 1 lines (31 bytes) of this invocation's output were dropped: it wrote more than 20 bytes"}
	if got := p.messages(); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("stored\n %q\nwant\n %q", got, want)
	}
	if st := w.Stats(); st.Cut != 3 {
		t.Fatalf("stats %+v", st)
	}
}

func TestRetentionTrimsOldestByBytes(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, logs.Config{MaxBytes: 64 << 10})
	line := strings.Repeat("y", 200)
	for i := 0; i < 100; i++ { // 100 batches of 10 events: about 230 KB
		var evs []logs.Event
		for j := 0; j < 10; j++ {
			evs = append(evs, logs.Event{Time: time.Now(), Message: fmt.Sprintf("%04d %s", i*10+j, line)})
		}
		e.writer.Append(alice, group, streamA, evs...)
		e.flush(t)
		if i == 10 { // counted before the trims: counted again after
			if sb := storedBytesOf(t, e.client("ALICE")); sb < 11*10*205 {
				t.Fatalf("storedBytes %d after 110 events of 205 bytes", sb)
			}
		}
	}
	c := e.client("ALICE")
	out, err := c.GetLogEvents(ctx, &cloudwatchlogs.GetLogEventsInput{LogGroupName: aws.String(group),
		LogStreamName: aws.String(streamA), StartFromHead: aws.Bool(true)})
	if err != nil {
		t.Fatal(err)
	}
	n := len(out.Events)
	if n == 0 || n > 350 || !strings.HasPrefix(aws.ToString(out.Events[n-1].Message), "0999 ") ||
		strings.HasPrefix(aws.ToString(out.Events[0].Message), "0000 ") {
		t.Fatalf("%d events kept, from %.4s to %.4s", n, aws.ToString(out.Events[0].Message), aws.ToString(out.Events[n-1].Message))
	}
	// What is left is contiguous: the oldest went first.
	var first int
	fmt.Sscanf(aws.ToString(out.Events[0].Message), "%d", &first)
	if first+n != 1000 {
		t.Fatalf("kept %d events from %d", n, first)
	}
	// storedBytes counts what is left: under the limit, at least the
	// messages kept.
	g, err := c.DescribeLogGroups(ctx, &cloudwatchlogs.DescribeLogGroupsInput{})
	if err != nil || len(g.LogGroups) != 1 {
		t.Fatalf("groups: %+v %v", g, err)
	}
	if sb := aws.ToInt64(g.LogGroups[0].StoredBytes); sb < int64(n*205) || sb > 64<<10 {
		t.Fatalf("storedBytes %d with %d events of 205 bytes kept under a limit of 64 KiB", sb, n)
	}
}

func TestRetentionTrimsByAge(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, logs.Config{MaxAge: time.Second})
	e.write(t, alice, streamA, "old", 0, 3)
	c := e.client("ALICE")
	g, err := c.DescribeLogGroups(ctx, &cloudwatchlogs.DescribeLogGroupsInput{})
	if err != nil || len(g.LogGroups) != 1 || g.LogGroups[0].RetentionInDays != nil {
		t.Fatalf("groups: %+v %v", g, err)
	}
	waitFor(t, "the events to expire", func() bool {
		g, err := c.DescribeLogGroups(ctx, &cloudwatchlogs.DescribeLogGroupsInput{})
		return err == nil && len(g.LogGroups) == 0
	})
}

// waitFor polls cond until it holds or a deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestLogsSurviveARestart(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	start := func(cfg logs.Config) (*logs.Store, func()) {
		ns, err := natsd.Start(natsd.Config{StoreDir: dir, SyncEveryWrite: true})
		if err != nil {
			t.Fatal(err)
		}
		nc, err := ns.Connect()
		if err != nil {
			t.Fatal(err)
		}
		st, err := logs.Open(ctx, nc, cfg)
		if err != nil {
			t.Fatal(err)
		}
		return st, func() { nc.Close(); ns.Shutdown() }
	}
	st, stop := start(logs.Config{})
	w := logs.NewWriter(logs.WriterConfig{Store: st, FlushInterval: time.Hour})
	w.Append(alice, group, streamA, ev("before the restart"))
	if err := w.Close(ctx); err != nil {
		t.Fatal(err)
	}
	stop()
	// Reopened with other limits: the stream is updated, its events kept.
	st, stop = start(logs.Config{MaxBytes: 1 << 20, MaxAge: time.Hour})
	defer stop()
	if b, a := st.Limits(); b != 1<<20 || a != time.Hour {
		t.Fatalf("limits %d %v", b, a)
	}
	failed, err := st.Put(ctx, []logs.Batch{{Account: alice, Group: group, Stream: streamA, Events: []logs.Event{ev("after")}}})
	if err != nil || failed != nil {
		t.Fatal(failed, err)
	}
	srv := httptest.NewServer(logs.NewAPI(logs.APIConfig{Store: st, Auth: fakeAuth{}}))
	defer srv.Close()
	e := &env{store: st, url: srv.URL}
	out, err := e.client("ALICE").FilterLogEvents(ctx, &cloudwatchlogs.FilterLogEventsInput{LogGroupName: aws.String(group)})
	if err != nil {
		t.Fatal(err)
	}
	same(t, "after a restart", messages(out.Events, filtMsg), []string{"before the restart", "after"})
}

func TestInvalidNamesAreLostNotStored(t *testing.T) {
	p := &fakePutter{}
	w := logs.NewWriter(logs.WriterConfig{Store: p, FlushInterval: time.Hour})
	defer w.Close(context.Background())
	w.Append("not.an.account", group, streamA, ev("x"), ev("y"))
	s := w.Open(alice, "", streamA)
	s.System(time.Now(), "START\n")
	s.Write(time.Now(), "z\n")
	_ = w.Flush(context.Background())
	if got := p.messages(); len(got) != 0 {
		t.Fatalf("stored %q", got)
	}
	if st := w.Stats(); st.Lost != 4 {
		t.Fatalf("stats %+v", st)
	}
}
