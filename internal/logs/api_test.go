package logs_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs/types"
	"github.com/aws/smithy-go"

	"github.com/emberfn/ember/internal/logs"
)

const (
	group   = "/aws/lambda/fn"
	streamA = "2026/01/02/[$LATEST]aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	streamB = "2026/01/02/[$LATEST]bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
)

var t0 = time.Now().Add(-time.Minute).Truncate(time.Millisecond)

// write appends n events "prefix i" to a stream, i from first, 1 ms apart
// from t0+first ms, and flushes them as one batch.
func (e *env) write(t *testing.T, account, stream, prefix string, first, n int) {
	t.Helper()
	var evs []logs.Event
	for i := first; i < first+n; i++ {
		evs = append(evs, logs.Event{Time: t0.Add(time.Duration(i) * time.Millisecond), Message: fmt.Sprintf("%s %d\n", prefix, i)})
	}
	e.writer.Append(account, group, stream, evs...)
	e.flush(t)
}

func messages[E any](evs []E, msg func(E) *string) []string {
	var out []string
	for _, e := range evs {
		out = append(out, strings.TrimSuffix(*msg(e), "\n"))
	}
	return out
}

func outMsg(e types.OutputLogEvent) *string    { return e.Message }
func filtMsg(e types.FilteredLogEvent) *string { return e.Message }

func seq(prefix string, from, to int) []string {
	var out []string
	for i := from; i < to; i++ {
		out = append(out, fmt.Sprintf("%s %d", prefix, i))
	}
	return out
}

func same(t *testing.T, what string, got, want []string) {
	t.Helper()
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("%s:\n got  %q\n want %q", what, got, want)
	}
}

func apiErr(t *testing.T, err error, code string) {
	t.Helper()
	var ae smithy.APIError
	if !errors.As(err, &ae) || ae.ErrorCode() != code {
		t.Fatalf("got %v; want %s", err, code)
	}
}

func TestWriteThenDescribeAndRead(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, logs.Config{})
	e.write(t, alice, streamA, "a", 0, 3)
	e.write(t, alice, streamB, "b", 3, 2)
	e.write(t, alice, streamA, "a", 5, 2)
	c := e.client("ALICE")

	g, err := c.DescribeLogGroups(ctx, &cloudwatchlogs.DescribeLogGroupsInput{})
	if err != nil {
		t.Fatal(err)
	}
	if len(g.LogGroups) != 1 || aws.ToString(g.LogGroups[0].LogGroupName) != group ||
		aws.ToString(g.LogGroups[0].LogGroupArn) != "arn:aws:logs:us-east-1:"+alice+":log-group:"+group ||
		aws.ToInt32(g.LogGroups[0].RetentionInDays) != 7 || aws.ToInt64(g.LogGroups[0].CreationTime) == 0 {
		t.Fatalf("groups: %+v", g.LogGroups)
	}
	s, err := c.DescribeLogStreams(ctx, &cloudwatchlogs.DescribeLogStreamsInput{LogGroupName: aws.String(group)})
	if err != nil {
		t.Fatal(err)
	}
	if len(s.LogStreams) != 2 || aws.ToString(s.LogStreams[0].LogStreamName) != streamA ||
		aws.ToInt64(s.LogStreams[0].FirstEventTimestamp) != t0.UnixMilli() ||
		aws.ToInt64(s.LogStreams[0].LastEventTimestamp) != t0.UnixMilli()+6 ||
		aws.ToInt64(s.LogStreams[1].LastEventTimestamp) != t0.UnixMilli()+4 {
		t.Fatalf("streams: %+v", s.LogStreams)
	}
	// By last event, newest first: A (last at +6) before B (+4).
	s, err = c.DescribeLogStreams(ctx, &cloudwatchlogs.DescribeLogStreamsInput{LogGroupName: aws.String(group),
		OrderBy: types.OrderByLastEventTime, Descending: aws.Bool(true), Limit: aws.Int32(1)})
	if err != nil || len(s.LogStreams) != 1 || aws.ToString(s.LogStreams[0].LogStreamName) != streamA || s.NextToken == nil {
		t.Fatalf("streams by time: %+v %v", s, err)
	}
	s, err = c.DescribeLogStreams(ctx, &cloudwatchlogs.DescribeLogStreamsInput{LogGroupName: aws.String(group),
		OrderBy: types.OrderByLastEventTime, Descending: aws.Bool(true), NextToken: s.NextToken})
	if err != nil || len(s.LogStreams) != 1 || aws.ToString(s.LogStreams[0].LogStreamName) != streamB || s.NextToken != nil {
		t.Fatalf("streams by time, page 2: %+v %v", s, err)
	}

	ge, err := c.GetLogEvents(ctx, &cloudwatchlogs.GetLogEventsInput{LogGroupName: aws.String(group),
		LogStreamName: aws.String(streamA), StartFromHead: aws.Bool(true)})
	if err != nil {
		t.Fatal(err)
	}
	same(t, "stream A", messages(ge.Events, outMsg), []string{"a 0", "a 1", "a 2", "a 5", "a 6"})
	for i, ev := range ge.Events {
		if ts := aws.ToInt64(ev.Timestamp); ts != t0.UnixMilli()+int64([]int{0, 1, 2, 5, 6}[i]) || aws.ToInt64(ev.IngestionTime) < ts {
			t.Fatalf("event %d: timestamp %d ingestion %d", i, ts, aws.ToInt64(ev.IngestionTime))
		}
	}

	fe, err := c.FilterLogEvents(ctx, &cloudwatchlogs.FilterLogEventsInput{LogGroupName: aws.String(group)})
	if err != nil {
		t.Fatal(err)
	}
	same(t, "group", messages(fe.Events, filtMsg), []string{"a 0", "a 1", "a 2", "b 3", "b 4", "a 5", "a 6"})
	if aws.ToString(fe.Events[3].LogStreamName) != streamB || fe.NextToken != nil || aws.ToString(fe.Events[0].EventId) == "" {
		t.Fatalf("filter: %+v", fe)
	}
	ids := map[string]bool{}
	for _, ev := range fe.Events {
		ids[aws.ToString(ev.EventId)] = true
	}
	if len(ids) != len(fe.Events) {
		t.Fatal("event ids are not unique")
	}

	for _, tc := range []struct {
		in   cloudwatchlogs.FilterLogEventsInput
		want []string
	}{
		{cloudwatchlogs.FilterLogEventsInput{FilterPattern: aws.String("b")}, []string{"b 3", "b 4"}},
		{cloudwatchlogs.FilterLogEventsInput{FilterPattern: aws.String(`?"a 1" ?4`)}, []string{"a 1", "b 4"}},
		{cloudwatchlogs.FilterLogEventsInput{FilterPattern: aws.String(`a -5 -6`)}, []string{"a 0", "a 1", "a 2"}},
		{cloudwatchlogs.FilterLogEventsInput{FilterPattern: aws.String(`%[ab] [25]%`)}, []string{"a 2", "a 5"}},
		{cloudwatchlogs.FilterLogEventsInput{LogStreamNames: []string{streamB}}, []string{"b 3", "b 4"}},
		{cloudwatchlogs.FilterLogEventsInput{LogStreamNames: []string{streamB, streamA}}, []string{"a 0", "a 1", "a 2", "b 3", "b 4", "a 5", "a 6"}},
		{cloudwatchlogs.FilterLogEventsInput{LogStreamNamePrefix: aws.String("2026/01/02/[$LATEST]b")}, []string{"b 3", "b 4"}},
		{cloudwatchlogs.FilterLogEventsInput{StartTime: aws.Int64(t0.UnixMilli() + 2), EndTime: aws.Int64(t0.UnixMilli() + 5)}, []string{"a 2", "b 3", "b 4", "a 5"}},
		{cloudwatchlogs.FilterLogEventsInput{StartTime: aws.Int64(time.Now().Add(time.Hour).UnixMilli())}, nil},
	} {
		in := tc.in
		in.LogGroupName = aws.String(group)
		fe, err := c.FilterLogEvents(ctx, &in)
		if err != nil {
			t.Fatal(err)
		}
		same(t, fmt.Sprintf("filter %+v", tc.in), messages(fe.Events, filtMsg), tc.want)
	}
	// The group by its ARN.
	fe, err = c.FilterLogEvents(ctx, &cloudwatchlogs.FilterLogEventsInput{LogGroupIdentifier: g.LogGroups[0].LogGroupArn, Limit: aws.Int32(1)})
	if err != nil || len(fe.Events) != 1 || fe.NextToken == nil {
		t.Fatalf("by arn: %+v %v", fe, err)
	}
}

func TestPaging(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, logs.Config{})
	for i := 0; i < 25; i += 5 { // five messages of five events
		e.write(t, alice, streamA, "a", i, 5)
		e.write(t, alice, streamB, "b", i, 1)
	}
	c := e.client("ALICE")

	// Forward with the SDK's paginator, which stops when the token comes back.
	var got []string
	pages := 0
	p := cloudwatchlogs.NewGetLogEventsPaginator(c, &cloudwatchlogs.GetLogEventsInput{LogGroupName: aws.String(group),
		LogStreamName: aws.String(streamA), StartFromHead: aws.Bool(true), Limit: aws.Int32(4)},
		func(o *cloudwatchlogs.GetLogEventsPaginatorOptions) { o.StopOnDuplicateToken = true })
	for p.HasMorePages() && pages < 20 {
		out, err := p.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		got = append(got, messages(out.Events, outMsg)...)
	}
	same(t, "forward pages", got, seq("a", 0, 25))
	if pages != 8 { // 7 pages with events, then an empty one that returns the same token
		t.Fatalf("%d pages", pages)
	}

	// Without a token nor startFromHead: the newest events, then backwards.
	out, err := c.GetLogEvents(ctx, &cloudwatchlogs.GetLogEventsInput{LogGroupName: aws.String(group),
		LogStreamName: aws.String(streamA), Limit: aws.Int32(7)})
	if err != nil {
		t.Fatal(err)
	}
	same(t, "tail", messages(out.Events, outMsg), seq("a", 18, 25))
	fwd := out.NextForwardToken
	got = messages(out.Events, outMsg)
	for i := 0; i < 10; i++ {
		prev := aws.ToString(out.NextBackwardToken)
		out, err = c.GetLogEvents(ctx, &cloudwatchlogs.GetLogEventsInput{LogGroupName: aws.String(group),
			LogStreamName: aws.String(streamA), Limit: aws.Int32(7), NextToken: out.NextBackwardToken})
		if err != nil {
			t.Fatal(err)
		}
		if len(out.Events) == 0 {
			if aws.ToString(out.NextBackwardToken) != prev {
				t.Fatal("at the head, the backward token changed")
			}
			break
		}
		got = append(messages(out.Events, outMsg), got...)
	}
	same(t, "backward pages", got, seq("a", 0, 25))

	// The forward token of the tail sees events written later.
	out, err = c.GetLogEvents(ctx, &cloudwatchlogs.GetLogEventsInput{LogGroupName: aws.String(group),
		LogStreamName: aws.String(streamA), NextToken: fwd})
	if err != nil || len(out.Events) != 0 || aws.ToString(out.NextForwardToken) != aws.ToString(fwd) {
		t.Fatalf("at the end: %+v %v", out, err)
	}
	e.write(t, alice, streamA, "a", 25, 2)
	out, err = c.GetLogEvents(ctx, &cloudwatchlogs.GetLogEventsInput{LogGroupName: aws.String(group),
		LogStreamName: aws.String(streamA), NextToken: fwd})
	if err != nil {
		t.Fatal(err)
	}
	same(t, "new events", messages(out.Events, outMsg), seq("a", 25, 27))

	// startTime and endTime (exclusive in GetLogEvents).
	out, err = c.GetLogEvents(ctx, &cloudwatchlogs.GetLogEventsInput{LogGroupName: aws.String(group),
		LogStreamName: aws.String(streamA), StartFromHead: aws.Bool(true),
		StartTime: aws.Int64(t0.UnixMilli() + 3), EndTime: aws.Int64(t0.UnixMilli() + 6)})
	if err != nil {
		t.Fatal(err)
	}
	same(t, "time window", messages(out.Events, outMsg), seq("a", 3, 6))

	// FilterLogEvents pages with nextToken until there is none.
	got = nil
	fp := cloudwatchlogs.NewFilterLogEventsPaginator(c, &cloudwatchlogs.FilterLogEventsInput{
		LogGroupName: aws.String(group), LogStreamNames: []string{streamA}, Limit: aws.Int32(6)})
	for fp.HasMorePages() {
		out, err := fp.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, messages(out.Events, filtMsg)...)
	}
	same(t, "filter pages", got, seq("a", 0, 27))
}

func TestAccountsAreIsolated(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, logs.Config{})
	e.write(t, alice, streamA, "secret", 0, 2)
	b := e.client("BOB")
	g, err := b.DescribeLogGroups(ctx, &cloudwatchlogs.DescribeLogGroupsInput{})
	if err != nil || len(g.LogGroups) != 0 {
		t.Fatalf("bob sees groups %+v %v", g, err)
	}
	_, err = b.FilterLogEvents(ctx, &cloudwatchlogs.FilterLogEventsInput{LogGroupName: aws.String(group)})
	apiErr(t, err, "ResourceNotFoundException")
	_, err = b.FilterLogEvents(ctx, &cloudwatchlogs.FilterLogEventsInput{
		LogGroupIdentifier: aws.String("arn:aws:logs:us-east-1:" + alice + ":log-group:" + group)})
	apiErr(t, err, "ResourceNotFoundException")
	_, err = b.GetLogEvents(ctx, &cloudwatchlogs.GetLogEventsInput{LogGroupName: aws.String(group), LogStreamName: aws.String(streamA)})
	apiErr(t, err, "ResourceNotFoundException")
	_, err = b.DescribeLogStreams(ctx, &cloudwatchlogs.DescribeLogStreamsInput{LogGroupName: aws.String(group)})
	apiErr(t, err, "ResourceNotFoundException")
	// Bob's own group of the same name is his alone.
	e.write(t, bob, streamB, "bob", 0, 1)
	fe, err := b.FilterLogEvents(ctx, &cloudwatchlogs.FilterLogEventsInput{LogGroupName: aws.String(group)})
	if err != nil {
		t.Fatal(err)
	}
	same(t, "bob's", messages(fe.Events, filtMsg), []string{"bob 0"})
	fe, err = e.client("ALICE").FilterLogEvents(ctx, &cloudwatchlogs.FilterLogEventsInput{LogGroupName: aws.String(group)})
	if err != nil {
		t.Fatal(err)
	}
	same(t, "alice's", messages(fe.Events, filtMsg), []string{"secret 0", "secret 1"})
}

func TestErrors(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, logs.Config{})
	e.write(t, alice, streamA, "a", 0, 1)
	c := e.client("ALICE")
	_, err := c.GetLogEvents(ctx, &cloudwatchlogs.GetLogEventsInput{LogGroupName: aws.String(group), LogStreamName: aws.String("nope")})
	apiErr(t, err, "ResourceNotFoundException")
	_, err = c.GetLogEvents(ctx, &cloudwatchlogs.GetLogEventsInput{LogGroupName: aws.String("/aws/lambda/nope"), LogStreamName: aws.String(streamA)})
	apiErr(t, err, "ResourceNotFoundException")
	_, err = c.GetLogEvents(ctx, &cloudwatchlogs.GetLogEventsInput{LogGroupName: aws.String(group), LogStreamName: aws.String(streamA), NextToken: aws.String("garbage")})
	apiErr(t, err, "InvalidParameterException")
	_, err = c.FilterLogEvents(ctx, &cloudwatchlogs.FilterLogEventsInput{LogGroupName: aws.String(group), Limit: aws.Int32(10001)})
	apiErr(t, err, "InvalidParameterException")
	_, err = c.FilterLogEvents(ctx, &cloudwatchlogs.FilterLogEventsInput{LogGroupName: aws.String(group), FilterPattern: aws.String(`{ $.level = "x" }`)})
	apiErr(t, err, "InvalidParameterException")
	_, err = c.FilterLogEvents(ctx, &cloudwatchlogs.FilterLogEventsInput{LogGroupName: aws.String(group),
		LogStreamNames: []string{streamA}, LogStreamNamePrefix: aws.String("x")})
	apiErr(t, err, "InvalidParameterException")
	_, err = c.DescribeLogStreams(ctx, &cloudwatchlogs.DescribeLogStreamsInput{LogGroupName: aws.String(group),
		OrderBy: types.OrderByLastEventTime, LogStreamNamePrefix: aws.String("2026")})
	apiErr(t, err, "InvalidParameterException")
	_, err = c.CreateLogGroup(ctx, &cloudwatchlogs.CreateLogGroupInput{LogGroupName: aws.String("x")})
	apiErr(t, err, "UnknownOperationException")

	// Raw: the status and the body's shape.
	post := func(target, authz string) (*http.Response, map[string]string) {
		req, _ := http.NewRequest("POST", e.url+"/", bytes.NewReader([]byte(`{"logGroupName":"/nope"}`)))
		req.Header.Set("X-Amz-Target", target)
		req.Header.Set("Content-Type", "application/x-amz-json-1.1")
		if authz != "" {
			req.Header.Set("Authorization", authz)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var m map[string]string
		_ = json.Unmarshal(b, &m)
		return resp, m
	}
	resp, body := post("Logs_20140328.FilterLogEvents", "")
	if resp.StatusCode != 400 || body["__type"] != "MissingAuthenticationTokenException" || resp.Header.Get("X-Amzn-RequestId") == "" {
		t.Fatalf("unsigned: %d %v", resp.StatusCode, body)
	}
	good := "AWS4-HMAC-SHA256 Credential=ALICE/20260101/us-east-1/logs/aws4_request, SignedHeaders=host, Signature=00"
	resp, body = post("Logs_20140328.FilterLogEvents", good)
	if resp.StatusCode != 400 || body["__type"] != "ResourceNotFoundException" || body["message"] != "The specified log group does not exist." ||
		resp.Header.Get("X-Amzn-ErrorType") != "ResourceNotFoundException" {
		t.Fatalf("missing group: %d %v", resp.StatusCode, body)
	}
	resp, body = post("Logs_20140328.FilterLogEvents", strings.Replace(good, "/logs/", "/lambda/", 1))
	if resp.StatusCode != 400 || body["__type"] != "InvalidSignatureException" {
		t.Fatalf("lambda-scoped key: %d %v", resp.StatusCode, body)
	}
}

func TestIsLogsRequest(t *testing.T) {
	for _, tc := range []struct {
		method, path, target string
		want                 bool
	}{
		{"POST", "/", "Logs_20140328.FilterLogEvents", true},
		{"POST", "/", "", false},
		{"GET", "/", "Logs_20140328.FilterLogEvents", false},
		{"POST", "/2015-03-31/functions", "Logs_20140328.FilterLogEvents", false},
		{"POST", "/", "AWSLambda.Invoke", false},
	} {
		r, _ := http.NewRequest(tc.method, "http://x"+tc.path, nil)
		if tc.target != "" {
			r.Header.Set("X-Amz-Target", tc.target)
		}
		if got := logs.IsLogsRequest(r); got != tc.want {
			t.Errorf("%s %s %q: %v", tc.method, tc.path, tc.target, got)
		}
	}
}

// storedBytesOf is DescribeLogGroups' storedBytes of the one group.
func storedBytesOf(t *testing.T, c *cloudwatchlogs.Client) int64 {
	t.Helper()
	g, err := c.DescribeLogGroups(context.Background(), &cloudwatchlogs.DescribeLogGroupsInput{})
	if err != nil || len(g.LogGroups) != 1 {
		t.Fatalf("groups: %+v %v", g, err)
	}
	return aws.ToInt64(g.LogGroups[0].StoredBytes)
}

// DescribeLogGroups' storedBytes is what the group's batches take: the
// messages and a few bytes per event and batch; it grows with each write
// and is the account's own.
func TestStoredBytes(t *testing.T) {
	e := newEnv(t, logs.Config{})
	a, b := e.client("ALICE"), e.client("BOB")
	msgs, events, batches := 0, 0, 0
	within := func(what string, got int64) {
		t.Helper()
		if lo, hi := int64(msgs), int64(msgs+12*events+24*batches); got < lo || got > hi {
			t.Fatalf("%s: storedBytes %d; want %d to %d (%d events in %d batches)", what, got, lo, hi, events, batches)
		}
	}
	line := strings.Repeat("z", 1000)
	for i := range 3 {
		var evs []logs.Event
		for j := range 20 {
			m := fmt.Sprintf("%d.%d %s\n", i, j, line)
			evs = append(evs, logs.Event{Time: t0.Add(time.Duration(i*20+j) * time.Millisecond), Message: m})
			msgs += len(m)
		}
		e.writer.Append(alice, group, streamA, evs...)
		e.flush(t)
		events, batches = events+20, batches+1
		within(fmt.Sprintf("after batch %d", i), storedBytesOf(t, a))
	}
	if got := storedBytesOf(t, a); got != storedBytesOf(t, a) {
		t.Fatal("storedBytes changed without a write")
	}
	e.write(t, bob, streamA, "bob", 0, 1)
	if got, mine := storedBytesOf(t, b), storedBytesOf(t, a); got <= 0 || got >= 100 || mine < int64(msgs) {
		t.Fatalf("bob's group %d bytes, alice's %d", got, mine)
	}
}
