package main

// System tests of function logs (the CloudWatch Logs API on Ember's listen
// address, read with the real SDK client) and of GET /metrics.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs/types"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"

	"github.com/emberfn/ember/internal/workermanager"
)

// logsClient is the real CloudWatch Logs client against this server.
func (s *emberServer) logsClient(c aws.Credentials) *cloudwatchlogs.Client {
	return cloudwatchlogs.New(cloudwatchlogs.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(s.url),
		Credentials:  credentials.NewStaticCredentialsProvider(c.AccessKeyID, c.SecretAccessKey, ""),
		Retryer:      aws.NopRetryer{},
	})
}

// createAccount makes an account through Ember's admin API (SigV4 service
// "ember") with the administrator's keys.
func (s *emberServer) createAccount(name string) aws.Credentials {
	s.t.Helper()
	body := []byte(`{"Name":"` + name + `"}`)
	req, _ := http.NewRequest("POST", s.url+"/ember/v1/accounts", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	sum := sha256.Sum256(body)
	if err := v4.NewSigner().SignHTTP(context.Background(), s.creds("default"), req, hex.EncodeToString(sum[:]), "ember", "us-east-1", time.Now()); err != nil {
		s.t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	var acct struct{ AccessKeyId, SecretAccessKey string }
	if err := json.NewDecoder(resp.Body).Decode(&acct); err != nil || resp.StatusCode != 201 {
		s.t.Fatalf("create account: %d %v", resp.StatusCode, err)
	}
	return aws.Credentials{AccessKeyID: acct.AccessKeyId, SecretAccessKey: acct.SecretAccessKey}
}

func requestIDOf(t *testing.T, out *lambda.InvokeOutput) string {
	t.Helper()
	id, ok := awsmiddleware.GetRequestIDMetadata(out.ResultMetadata)
	if !ok || id == "" {
		t.Fatal("the invoke answered no request id")
	}
	return id
}

// groupEvents reads every event of a log group with FilterLogEvents, page
// after page.
func groupEvents(t *testing.T, cw *cloudwatchlogs.Client, group string) []cwtypes.FilteredLogEvent {
	t.Helper()
	var out []cwtypes.FilteredLogEvent
	p := cloudwatchlogs.NewFilterLogEventsPaginator(cw, &cloudwatchlogs.FilterLogEventsInput{LogGroupName: aws.String(group)})
	for p.HasMorePages() {
		page, err := p.NextPage(context.Background())
		if err != nil {
			var nf *cwtypes.ResourceNotFoundException
			if errors.As(err, &nf) {
				return nil // no line stored yet
			}
			t.Fatal(err)
		}
		out = append(out, page.Events...)
	}
	return out
}

// invocationLog waits until the REPORT line of an invocation is stored and
// returns that invocation's events, START to REPORT, as FilterLogEvents
// returns them.
func invocationLog(t *testing.T, cw *cloudwatchlogs.Client, group, requestID string) []cwtypes.FilteredLogEvent {
	t.Helper()
	var evs []cwtypes.FilteredLogEvent
	waitFor(t, "the REPORT line of "+requestID, func() bool {
		evs = groupEvents(t, cw, group)
		for _, e := range evs {
			if strings.HasPrefix(aws.ToString(e.Message), "REPORT RequestId: "+requestID) {
				return true
			}
		}
		return false
	})
	first, last := -1, -1
	for i, e := range evs {
		m := aws.ToString(e.Message)
		if strings.HasPrefix(m, "START RequestId: "+requestID+" ") {
			first = i
		}
		if strings.HasPrefix(m, "REPORT RequestId: "+requestID) {
			last = i
		}
	}
	if first < 0 || first > last {
		t.Fatalf("no START line before the REPORT line of %s:\n%s", requestID, dump(evs))
	}
	return evs[first : last+1]
}

func dump(evs []cwtypes.FilteredLogEvent) string {
	var b strings.Builder
	for _, e := range evs {
		fmt.Fprintf(&b, "  %s %d %q\n", aws.ToString(e.LogStreamName), aws.ToInt64(e.Timestamp), aws.ToString(e.Message))
	}
	return b.String()
}

// lines are the messages without their newline.
func lines(evs []cwtypes.FilteredLogEvent) []string {
	var out []string
	for _, e := range evs {
		out = append(out, strings.TrimSuffix(aws.ToString(e.Message), "\n"))
	}
	return out
}

// expectLines checks got against want line by line; a want ending in "*"
// matches a prefix.
func expectLines(t *testing.T, what string, evs []cwtypes.FilteredLogEvent, want ...string) {
	t.Helper()
	got := lines(evs)
	ok := len(got) == len(want)
	for i := 0; ok && i < len(want); i++ {
		if p, prefix := strings.CutSuffix(want[i], "*"); prefix {
			ok = strings.HasPrefix(got[i], p)
		} else {
			ok = got[i] == want[i]
		}
	}
	if !ok {
		t.Fatalf("%s:\n%s\nwant:\n  %s", what, dump(evs), strings.Join(want, "\n  "))
	}
}

var streamNameRE = regexp.MustCompile(`^\d{4}/\d{2}/\d{2}/\[\$LATEST\][0-9a-f]{32}$`)

func TestLogsReadBack(t *testing.T) {
	ctx := context.Background()
	srv, c, _ := startInvokeEmber(t)
	createProbe(t, c, "talker", nil)
	cw := srv.logsClient(srv.creds("default"))
	const group = "/aws/lambda/talker"

	before := time.Now().Add(-time.Second)
	out, _ := invokeJSON(t, c, "talker", map[string]any{"mode": "log", "n": 3, "label": "x"}, true)
	id1 := requestIDOf(t, out)
	evs := invocationLog(t, cw, group, id1)
	expectLines(t, "the first invocation", evs,
		"START RequestId: "+id1+" Version: $LATEST",
		"log line 0 of x", "log line 1 of x", "log line 2 of x", "to stderr x",
		"END RequestId: "+id1,
		"REPORT RequestId: "+id1+"\tDuration: *")
	if !strings.Contains(aws.ToString(evs[6].Message), "Init Duration: ") {
		t.Fatalf("the first REPORT has no Init Duration: %q", aws.ToString(evs[6].Message))
	}
	stream := aws.ToString(evs[0].LogStreamName)
	if !streamNameRE.MatchString(stream) || !strings.HasPrefix(stream, time.Now().UTC().Format("2006/01/02")) {
		t.Fatalf("log stream name %q", stream)
	}
	var prev int64
	for _, e := range evs {
		ts, ing := aws.ToInt64(e.Timestamp), aws.ToInt64(e.IngestionTime)
		if aws.ToString(e.LogStreamName) != stream || ts < prev || ts < before.UnixMilli() ||
			ts > time.Now().UnixMilli() || ing < ts || aws.ToString(e.EventId) == "" {
			t.Fatalf("event %+v (after %d)", e, prev)
		}
		prev = ts
	}
	// The Tail of the invoke is the same log.
	if tail := logOf(t, out); !strings.Contains(tail, "log line 2 of x\nto stderr x\nEND RequestId: "+id1) {
		t.Fatalf("tail:\n%s", tail)
	}

	// A warm invoke writes to the same stream.
	out, _ = invokeJSON(t, c, "talker", map[string]any{"mode": "log", "n": 2, "label": "y"}, false)
	id2 := requestIDOf(t, out)
	evs = invocationLog(t, cw, group, id2)
	expectLines(t, "the second invocation", evs,
		"START RequestId: "+id2+" Version: $LATEST", "log line 0 of y", "log line 1 of y", "to stderr y",
		"END RequestId: "+id2, "REPORT RequestId: "+id2+"\tDuration: *")
	if aws.ToString(evs[0].LogStreamName) != stream || strings.Contains(aws.ToString(evs[5].Message), "Init Duration") {
		t.Fatalf("warm invoke: stream %s, %q", aws.ToString(evs[0].LogStreamName), aws.ToString(evs[5].Message))
	}

	// describe-log-groups, describe-log-streams.
	g, err := cw.DescribeLogGroups(ctx, &cloudwatchlogs.DescribeLogGroupsInput{LogGroupNamePrefix: aws.String("/aws/lambda/")})
	if err != nil {
		t.Fatal(err)
	}
	fn, err := c.GetFunction(ctx, &lambda.GetFunctionInput{FunctionName: aws.String("talker")})
	if err != nil {
		t.Fatal(err)
	}
	account := strings.Split(aws.ToString(fn.Configuration.FunctionArn), ":")[4]
	if len(g.LogGroups) != 1 || aws.ToString(g.LogGroups[0].LogGroupName) != group ||
		aws.ToString(g.LogGroups[0].LogGroupArn) != "arn:aws:logs:us-east-1:"+account+":log-group:"+group {
		t.Fatalf("log groups %+v", g.LogGroups)
	}
	st, err := cw.DescribeLogStreams(ctx, &cloudwatchlogs.DescribeLogStreamsInput{LogGroupName: aws.String(group),
		OrderBy: cwtypes.OrderByLastEventTime, Descending: aws.Bool(true)})
	if err != nil {
		t.Fatal(err)
	}
	if len(st.LogStreams) != 1 || aws.ToString(st.LogStreams[0].LogStreamName) != stream ||
		aws.ToInt64(st.LogStreams[0].LastEventTimestamp) < aws.ToInt64(st.LogStreams[0].FirstEventTimestamp) {
		t.Fatalf("log streams %+v", st.LogStreams)
	}

	// get-log-events, from the head, three at a time: both invocations.
	var got []string
	p := cloudwatchlogs.NewGetLogEventsPaginator(cw, &cloudwatchlogs.GetLogEventsInput{LogGroupName: aws.String(group),
		LogStreamName: aws.String(stream), StartFromHead: aws.Bool(true), Limit: aws.Int32(3)},
		func(o *cloudwatchlogs.GetLogEventsPaginatorOptions) { o.StopOnDuplicateToken = true })
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range page.Events {
			got = append(got, strings.TrimSuffix(aws.ToString(e.Message), "\n"))
		}
	}
	all := lines(groupEvents(t, cw, group))
	if strings.Join(got, "\n") != strings.Join(all, "\n") || len(got) < 13 {
		t.Fatalf("get-log-events:\n%q\nfilter-log-events:\n%q", got, all)
	}
	// What `aws logs tail` asks: the last ten minutes, interleaved, and a
	// filter pattern.
	fe, err := cw.FilterLogEvents(ctx, &cloudwatchlogs.FilterLogEventsInput{LogGroupName: aws.String(group),
		StartTime: aws.Int64(time.Now().Add(-10 * time.Minute).UnixMilli()), Interleaved: aws.Bool(true),
		FilterPattern: aws.String(`"of y"`)})
	if err != nil {
		t.Fatal(err)
	}
	expectLines(t, "filter pattern", fe.Events, "log line 0 of y", "log line 1 of y")

	// Another account sees none of it, even by ARN.
	bob := srv.logsClient(srv.createAccount("bob"))
	bg, err := bob.DescribeLogGroups(ctx, &cloudwatchlogs.DescribeLogGroupsInput{})
	if err != nil || len(bg.LogGroups) != 0 {
		t.Fatalf("bob's groups: %+v %v", bg, err)
	}
	_, err = bob.FilterLogEvents(ctx, &cloudwatchlogs.FilterLogEventsInput{LogGroupName: aws.String(group)})
	apiErr(t, err, "ResourceNotFoundException", 400)
	_, err = bob.GetLogEvents(ctx, &cloudwatchlogs.GetLogEventsInput{LogGroupIdentifier: g.LogGroups[0].LogGroupArn, LogStreamName: aws.String(stream)})
	apiErr(t, err, "ResourceNotFoundException", 400)

	// The logs API authenticates like Lambda's, for service "logs".
	_, err = cw.CreateLogGroup(ctx, &cloudwatchlogs.CreateLogGroupInput{LogGroupName: aws.String("x")})
	apiErr(t, err, "UnknownOperationException", 400)
	body := []byte(`{"logGroupName":"` + group + `"}`)
	resp := srv.signedAs(srv.creds("default"), "POST", "/", "application/x-amz-json-1.1", body, time.Now(), func(r *http.Request) {
		r.Header.Set("X-Amz-Target", "Logs_20140328.FilterLogEvents")
	}) // signed for service "lambda"
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 400 || resp.Header.Get("X-Amzn-ErrorType") != "InvalidSignatureException" {
		t.Fatalf("a request signed for lambda: %d %s %s", resp.StatusCode, resp.Header.Get("X-Amzn-ErrorType"), b)
	}
}

// tailFollow is what `aws logs tail --follow` does each poll: every event
// of the group from startTime on, interleaved, page after page until no
// nextToken; then startTime moves to the newest timestamp seen, so the
// events at that millisecond come again and are told apart by eventId.
type tailFollow struct {
	cw        *cloudwatchlogs.Client
	group     string
	startTime int64
	seen      map[string]bool
	pages     int // pages read, across polls
	again     int // events returned again, across polls
}

// poll returns the events not seen before.
func (f *tailFollow) poll(t *testing.T) []cwtypes.FilteredLogEvent {
	t.Helper()
	var out []cwtypes.FilteredLogEvent
	newest := f.startTime
	var token *string
	for {
		page, err := f.cw.FilterLogEvents(context.Background(), &cloudwatchlogs.FilterLogEventsInput{
			LogGroupName: aws.String(f.group), StartTime: aws.Int64(f.startTime), Interleaved: aws.Bool(true),
			NextToken: token, Limit: aws.Int32(3), // pages of three, to follow nextToken
		})
		if err != nil {
			t.Fatal(err)
		}
		f.pages++
		for _, e := range page.Events {
			if aws.ToInt64(e.Timestamp) < f.startTime {
				t.Fatalf("an event before startTime %d: %+v", f.startTime, e)
			}
			if f.seen[aws.ToString(e.EventId)] {
				f.again++
				continue
			}
			f.seen[aws.ToString(e.EventId)] = true
			newest = max(newest, aws.ToInt64(e.Timestamp))
			out = append(out, e)
		}
		if token = page.NextToken; token == nil {
			break
		}
	}
	f.startTime = newest
	return out
}

// The `aws logs tail --follow` pattern through the SDK: each line of an
// invocation arrives once, also the lines of an invocation made while
// following; and the CLI's follower, the same pattern, keeps only the
// last millisecond's ids.
func TestLogsTailFollowPattern(t *testing.T) {
	srv, c, _ := startInvokeEmber(t)
	createProbe(t, c, "tail", nil)
	cw := srv.logsClient(srv.creds("default"))
	const group = "/aws/lambda/tail"
	out, _ := invokeJSON(t, c, "tail", map[string]any{"mode": "log", "n": 4, "label": "a"}, false)
	id1 := requestIDOf(t, out)
	invocationLog(t, cw, group, id1) // stored to its REPORT

	f := &tailFollow{cw: cw, group: group, startTime: time.Now().Add(-10 * time.Minute).UnixMilli(), seen: map[string]bool{}}
	var got []cwtypes.FilteredLogEvent
	got = append(got, f.poll(t)...)
	expectLines(t, "the first poll", got,
		"START RequestId: "+id1+" Version: $LATEST", "log line 0 of a", "log line 1 of a", "log line 2 of a", "log line 3 of a",
		"to stderr a", "END RequestId: "+id1, "REPORT RequestId: "+id1+"\t*")
	if f.pages < 3 {
		t.Fatalf("%d pages for %d events in pages of 3: nextToken not followed", f.pages, len(got))
	}
	// Nothing new: the newest millisecond's events come again, and are
	// dropped as seen.
	if again := f.poll(t); len(again) != 0 || f.again == 0 {
		t.Fatalf("a poll with nothing new returned %d new events, %d seen again:\n%s", len(again), f.again, dump(again))
	}

	out, _ = invokeJSON(t, c, "tail", map[string]any{"mode": "log", "n": 2, "label": "b"}, false)
	id2 := requestIDOf(t, out)
	pollUntil(t, "the second invocation's REPORT through the follow", 30*time.Second, 50*time.Millisecond, func() bool {
		got = append(got, f.poll(t)...)
		return strings.HasPrefix(lines(got)[len(got)-1], "REPORT RequestId: "+id2)
	})
	expectLines(t, "both invocations, each line once", got,
		"START RequestId: "+id1+" Version: $LATEST", "log line 0 of a", "log line 1 of a", "log line 2 of a", "log line 3 of a",
		"to stderr a", "END RequestId: "+id1, "REPORT RequestId: "+id1+"\t*",
		"START RequestId: "+id2+" Version: $LATEST", "log line 0 of b", "log line 1 of b", "to stderr b",
		"END RequestId: "+id2, "REPORT RequestId: "+id2+"\t*")
	for i := 1; i < len(got); i++ {
		if aws.ToInt64(got[i].Timestamp) < aws.ToInt64(got[i-1].Timestamp) {
			t.Fatalf("not in time order:\n%s", dump(got))
		}
	}

	// The CLI's follower prints the same lines once and keeps only the
	// ids at or after its start time.
	var printed bytes.Buffer
	lf := &logFollower{c: cw, group: group, start: time.Now().Add(-10 * time.Minute).UnixMilli(), seen: map[string]int64{}, out: &printed}
	for range 3 {
		if err := lf.poll(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if n := strings.Count(printed.String(), "\n"); n != len(got) {
		t.Fatalf("the CLI follower printed %d lines; want %d:\n%s", n, len(got), printed.String())
	}
	for _, l := range lines(got) {
		if !strings.Contains(printed.String(), " "+l+"\n") {
			t.Fatalf("the CLI follower did not print %q:\n%s", l, printed.String())
		}
	}
	if lf.start != aws.ToInt64(got[len(got)-1].Timestamp) || len(lf.seen) == 0 || len(lf.seen) >= len(got) {
		t.Fatalf("the CLI follower's start %d (newest %d), %d ids kept of %d", lf.start, aws.ToInt64(got[len(got)-1].Timestamp), len(lf.seen), len(got))
	}
	for id, ts := range lf.seen {
		if ts < lf.start {
			t.Fatalf("the CLI follower kept %s of %d, before its start %d", id, ts, lf.start)
		}
	}
}

// killerSource is a function that speaks the Runtime API with the standard
// library only: it writes two lines, the second without a newline, then
// hangs ("hang") or allocates until it is killed ("oom").
const killerSource = `package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"
)

func main() {
	api := "http://" + os.Getenv("AWS_LAMBDA_RUNTIME_API") + "/2018-06-01/runtime/invocation/"
	for {
		resp, err := http.Get(api + "next")
		if err != nil {
			os.Exit(1)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		id := resp.Header.Get("Lambda-Runtime-Aws-Request-Id")
		fmt.Printf("last words of %s\n", id)
		fmt.Print("a line without its newline")
		switch {
		case strings.Contains(string(body), "hang"):
			time.Sleep(time.Hour)
		case strings.Contains(string(body), "oom"):
			var keep [][]byte
			for {
				b := make([]byte, 1<<20)
				for i := range b {
					b[i] = 1
				}
				keep = append(keep, b)
			}
		}
		r, err := http.Post(api+id+"/response", "application/json", strings.NewReader("\"ok\""))
		if err == nil {
			r.Body.Close()
		}
	}
}
`

// killer is the zip of killerSource, built once per test binary.
func killer(t *testing.T) []byte { return goSourceZip(t, "killer", killerSource) }

// The last lines of a sandbox killed for its timeout or for memory are in
// its log, with the platform's lines.
func TestLogsOfKilledSandboxes(t *testing.T) {
	ctx := context.Background()
	srv, c, _ := startInvokeEmber(t)
	cw := srv.logsClient(srv.creds("default"))
	in := createInput("killer", killer(t))
	in.Timeout = aws.Int32(2)
	in.MemorySize = aws.Int32(128)
	if _, err := c.CreateFunction(ctx, in); err != nil {
		t.Fatal(err)
	}

	out, body := invokeJSON(t, c, "killer", "hang", false)
	if body["errorType"] != "Sandbox.Timedout" {
		t.Fatalf("hang: %s", out.Payload)
	}
	id := requestIDOf(t, out)
	expectLines(t, "a timed out invocation", invocationLog(t, cw, "/aws/lambda/killer", id),
		"START RequestId: "+id+" Version: $LATEST",
		"last words of "+id,
		"a line without its newline",
		"*", // the timestamped "Task timed out" line, checked below
		"END RequestId: "+id,
		"REPORT RequestId: "+id+"\t*")
	evs := invocationLog(t, cw, "/aws/lambda/killer", id)
	if m := aws.ToString(evs[3].Message); !strings.HasSuffix(m, id+" Task timed out after 2.00 seconds\n") {
		t.Fatalf("timeout line %q", m)
	}
	if m := aws.ToString(evs[5].Message); !strings.Contains(m, "Status: timeout") {
		t.Fatalf("REPORT of a timeout: %q", m)
	}

	out, body = invokeJSON(t, c, "killer", "oom", false)
	if body["errorType"] != "Runtime.ExitError" {
		t.Fatalf("oom: %s", out.Payload)
	}
	id = requestIDOf(t, out)
	evs = invocationLog(t, cw, "/aws/lambda/killer", id)
	expectLines(t, "an invocation killed for memory", evs,
		"START RequestId: "+id+" Version: $LATEST",
		"last words of "+id,
		"a line without its newline",
		"END RequestId: "+id,
		"REPORT RequestId: "+id+"\t*")
	if m := aws.ToString(evs[4].Message); !strings.Contains(m, "Error Type: Runtime.OutOfMemory") {
		t.Fatalf("REPORT of an OOM: %q", m)
	}
	// Each killed sandbox had a stream of its own.
	if streams := groupStreams(t, cw, "/aws/lambda/killer"); len(streams) != 2 {
		t.Fatalf("streams %q; want one per sandbox", streams)
	}
}

func groupStreams(t *testing.T, cw *cloudwatchlogs.Client, group string) []string {
	t.Helper()
	out, err := cw.DescribeLogStreams(context.Background(), &cloudwatchlogs.DescribeLogStreamsInput{LogGroupName: aws.String(group)})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range out.LogStreams {
		names = append(names, aws.ToString(s.LogStreamName))
	}
	return names
}

// An invocation that floods its output keeps the first MiB of it, and its
// log says how much was dropped.
func TestLogsFloodIsBoundedAndReported(t *testing.T) {
	emberLog := &syncBuffer{} // Ember's own log, at info level as by default
	srv, c, _ := startInvokeEmber(t, func(cfg *serveConfig) {
		cfg.Log = slog.New(ctxHandler{slog.NewJSONHandler(emberLog, &slog.HandlerOptions{Level: slog.LevelInfo})})
	})
	createProbe(t, c, "flood", nil)
	cw := srv.logsClient(srv.creds("default"))
	out, _ := invokeJSON(t, c, "flood", map[string]any{"mode": "log", "n": 60000, "label": "f"}, false)
	id := requestIDOf(t, out)
	invocationLog(t, cw, "/aws/lambda/flood", id) // waits for its REPORT
	dropped := regexp.MustCompile(`^EMBER: \d+ lines \(\d+ bytes\) of this invocation's output were dropped: it wrote more than 1048576 bytes$`)
	// The report comes before END, unless the worker read the output
	// after the runtime answered: then before the next invocation.
	var got []string
	waitFor(t, "the report of dropped output", func() bool {
		got = lines(groupEvents(t, cw, "/aws/lambda/flood"))
		return slices.ContainsFunc(got, dropped.MatchString)
	})
	kept, reports := 0, 0
	for _, l := range got {
		switch {
		case strings.HasSuffix(l, " of f"):
			kept += len(l) + 1
		case dropped.MatchString(l):
			reports++
		}
	}
	if got[1] != "log line 0 of f" || slices.Contains(got, "to stderr f") || reports != 1 ||
		kept > 1<<20 || kept < 1<<20-100 {
		t.Fatalf("kept %d bytes of output, %d reports; %d lines:\n%s\n...\n%s", kept, reports, len(got),
			strings.Join(got[:3], "\n"), strings.Join(got[max(0, len(got)-5):], "\n"))
	}
	// Ember's own log at info level has none of the flood: function
	// output is copied there at debug level only.
	if n := strings.Count(emberLog.String(), " of f"); n != 0 {
		t.Fatalf("Ember's log at info level has %d lines of the flood", n)
	}
	// The next invocation has its own budget.
	out, _ = invokeJSON(t, c, "flood", map[string]any{"mode": "log", "n": 1, "label": "g"}, false)
	id = requestIDOf(t, out)
	expectLines(t, "after the flood", invocationLog(t, cw, "/aws/lambda/flood", id),
		"START RequestId: "+id+" Version: $LATEST", "log line 0 of g", "to stderr g", "END RequestId: "+id, "REPORT RequestId: *")
}

// Retention trims the oldest logs once the stream holds more than its
// limit in bytes.
func TestLogsRetentionTrims(t *testing.T) {
	srv, c, _ := startInvokeEmber(t, func(cfg *serveConfig) { cfg.LogMaxBytes = 256 << 10 })
	createProbe(t, c, "chatty", nil)
	cw := srv.logsClient(srv.creds("default"))
	var ids []string
	for i := range 8 { // about 90 KB stored each
		out, _ := invokeJSON(t, c, "chatty", map[string]any{"mode": "log", "n": 2000, "label": "r" + strconv.Itoa(i)}, false)
		ids = append(ids, requestIDOf(t, out))
	}
	invocationLog(t, cw, "/aws/lambda/chatty", ids[7]) // waits for the newest REPORT
	all := strings.Join(lines(groupEvents(t, cw, "/aws/lambda/chatty")), "\n")
	if strings.Contains(all, "START RequestId: "+ids[0]) || strings.Contains(all, "log line 5 of r0\n") {
		t.Fatal("the oldest invocation's lines are still there")
	}
	if !strings.Contains(all, "log line 0 of r7\n") || !strings.Contains(all, "log line 1999 of r7\n") {
		t.Fatal("the newest invocation's lines are not all there")
	}
	if size := len(all); size > 256<<10 {
		t.Fatalf("%d bytes of messages kept under a limit of 256 KiB", size)
	}
}

// scrapeMetrics reads GET /metrics into series -> value.
func scrapeMetrics(t *testing.T, srv *emberServer, token string) map[string]float64 {
	t.Helper()
	req, _ := http.NewRequest("GET", srv.url+"/metrics", nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET /metrics: %d", resp.StatusCode)
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
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("metrics line %q", line)
		}
		out[line[:i]] = v
	}
	return out
}

func TestMetricsCountInvokesThrottlesAndFailures(t *testing.T) {
	ctx := context.Background()
	srv, c, dp := startInvokeEmber(t, func(cfg *serveConfig) { cfg.AccountConcurrency = 1 })
	createProbe(t, c, "m", nil)
	createProbe(t, c, "slowpoke", func(in *lambda.CreateFunctionInput) { in.Timeout = aws.Int32(1) })
	createProbe(t, c, "capped", nil)
	fn, err := c.GetFunction(ctx, &lambda.GetFunctionInput{FunctionName: aws.String("m")})
	if err != nil {
		t.Fatal(err)
	}
	account := strings.Split(aws.ToString(fn.Configuration.FunctionArn), ":")[4]
	m := `{account="` + account + `",function="m"`
	before := scrapeMetrics(t, srv, "")

	invokeJSON(t, c, "m", map[string]any{"x": 1}, false) // cold
	invokeJSON(t, c, "m", map[string]any{"x": 2}, false) // warm
	if out, _ := invokeJSON(t, c, "m", map[string]any{"mode": "error", "label": "e"}, false); out.FunctionError == nil {
		t.Fatal("no function error")
	}
	if out, body := invokeJSON(t, c, "slowpoke", map[string]any{"mode": "sleep", "n": 3000}, false); body["errorType"] != "Sandbox.Timedout" {
		t.Fatalf("no timeout: %s", out.Payload)
	}
	// With an account limit of 1, an invoke beside a running one is throttled.
	done := make(chan struct{})
	go func() {
		defer close(done)
		invokeJSON(t, c, "m", map[string]any{"mode": "sleep", "n": 1500}, false)
	}()
	waitFor(t, "the slow invoke to run", func() bool { return dp.manager.Counts()[workermanager.Busy] == 1 })
	during := scrapeMetrics(t, srv, "")
	_, err = c.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("m"), Payload: []byte(`{}`)})
	var tm *types.TooManyRequestsException
	if !errors.As(err, &tm) {
		t.Fatalf("beside a running invoke: %v", err)
	}
	<-done
	// Reserved concurrency 0 throttles every invoke of a function for its
	// reservation. It is allowed even though this account's limit (1)
	// leaves less than 100 unreserved: a reservation of 0 takes nothing.
	if _, err := c.PutFunctionConcurrency(ctx, &lambda.PutFunctionConcurrencyInput{
		FunctionName: aws.String("capped"), ReservedConcurrentExecutions: aws.Int32(0)}); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		_, err = c.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("capped"), Payload: []byte(`{}`)})
		if !errors.As(err, &tm) || tm.Reason != types.ThrottleReasonReservedFunctionConcurrentInvocationLimitExceeded {
			t.Fatalf("reserved 0: %v", err)
		}
	}
	after := scrapeMetrics(t, srv, "")

	delta := func(series string) float64 { return after[series] - before[series] }
	for series, want := range map[string]float64{
		"ember_invocations_total" + m + `,outcome="success"}`:                                                                           3,
		"ember_invocations_total" + m + `,outcome="function_error"}`:                                                                    1,
		`ember_invocations_total{account="` + account + `",function="slowpoke",outcome="timeout"}`:                                      1,
		"ember_function_errors_total" + m + `}`:                                                                                         1,
		`ember_function_errors_total{account="` + account + `",function="slowpoke"}`:                                                    1,
		"ember_throttles_total" + m + `,reason="ConcurrentInvocationLimitExceeded"}`:                                                    1,
		"ember_throttles_total" + m + `,reason="ReservedFunctionConcurrentInvocationLimitExceeded"}`:                                    0,
		`ember_throttles_total{account="` + account + `",function="capped",reason="ReservedFunctionConcurrentInvocationLimitExceeded"}`: 2,
		`ember_throttles_total{account="` + account + `",function="capped",reason="ConcurrentInvocationLimitExceeded"}`:                 0,
		`ember_invocations_total{account="` + account + `",function="capped",outcome="success"}`:                                        0,
		"ember_cold_starts_total" + m + `}`:                                                                                             1,
		"ember_init_duration_seconds_count" + m + `}`:                                                                                   1,
		"ember_invoke_duration_seconds_count" + m + `}`:                                                                                 4,
	} {
		if got := delta(series); got != want {
			t.Errorf("%s moved by %v; want %v", series, got, want)
		}
	}
	if v := during["ember_concurrent_executions"+m+`}`]; v != 1 {
		t.Errorf("concurrent executions during the slow invoke: %v", v)
	}
	if v := after["ember_concurrent_executions"+m+`}`]; v != 0 {
		t.Errorf("concurrent executions after: %v", v)
	}
	if v := during[`ember_sandboxes{state="busy",worker="local"}`]; v != 1 {
		t.Errorf("busy sandboxes during the slow invoke: %v", v)
	}
	if v := after[`ember_sandboxes{state="idle",worker="local"}`]; v != 1 {
		t.Errorf("idle sandboxes after: %v", v)
	}
	if after[`ember_worker_memory_capacity_bytes{worker="local",zone="local"}`] <= 0 ||
		after[`ember_worker_memory_reserved_bytes{worker="local",zone="local"}`] < 128<<20 {
		t.Errorf("worker memory: %v %v", after[`ember_worker_memory_capacity_bytes{worker="local",zone="local"}`],
			after[`ember_worker_memory_reserved_bytes{worker="local",zone="local"}`])
	}
	if after["ember_log_events_stored_total"] <= before["ember_log_events_stored_total"] {
		t.Error("no log events counted")
	}
}

func TestMetricsToken(t *testing.T) {
	srv := startEmber(t, t.TempDir(), func(cfg *serveConfig) { cfg.MetricsToken = "t0ken" })
	for _, tc := range []struct {
		authz string
		want  int
	}{{"", 401}, {"Bearer nope", 401}, {"Bearer t0ken", 200}} {
		req, _ := http.NewRequest("GET", srv.url+"/metrics", nil)
		if tc.authz != "" {
			req.Header.Set("Authorization", tc.authz)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%q: %d; want %d", tc.authz, resp.StatusCode, tc.want)
		}
	}
	if m := scrapeMetrics(t, srv, "t0ken"); m["go_goroutines"] == 0 {
		t.Error("no runtime metrics")
	}
}
