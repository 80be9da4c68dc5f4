package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"
)

// queueCall sends a request to Ember's queue API signed (service "ember")
// with c, and returns the status, the error type and the body.
func queueCall(t *testing.T, srv *emberServer, c aws.Credentials, method, path string, in any) (int, string, []byte) {
	t.Helper()
	var body []byte
	if in != nil {
		body, _ = json.Marshal(in)
	}
	req, err := http.NewRequest(method, srv.url+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	sum := sha256.Sum256(body)
	if err := v4.NewSigner().SignHTTP(context.Background(), c, req, hex.EncodeToString(sum[:]), "ember", "us-east-1", time.Now()); err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	_, _ = buf.ReadFrom(resp.Body)
	return resp.StatusCode, resp.Header.Get("X-Amzn-ErrorType"), buf.Bytes()
}

// createQueue makes a queue through the API and returns its ARN.
func createTestQueue(t *testing.T, srv *emberServer, c aws.Credentials, name string) string {
	t.Helper()
	status, typ, body := queueCall(t, srv, c, "POST", "/ember/v1/queues", map[string]any{"QueueName": name})
	var out struct{ QueueArn string }
	if status != 201 || json.Unmarshal(body, &out) != nil {
		t.Fatalf("create queue %s: %d %s %s", name, status, typ, body)
	}
	return out.QueueArn
}

type queueAPIMessage struct {
	MessageId         string
	ReceiptHandle     string
	Sequence          uint64
	Body              string
	Attributes        map[string]string
	MessageAttributes map[string]string
}

// receiveAll receives until n messages came (each waits up to 1 s), and
// deletes them.
func receiveQueue(t *testing.T, srv *emberServer, c aws.Credentials, queue string, n int) []queueAPIMessage {
	t.Helper()
	var got []queueAPIMessage
	waitFor(t, "messages in queue "+queue, func() bool {
		status, typ, body := queueCall(t, srv, c, "POST", "/ember/v1/queues/"+queue+"/receive",
			map[string]any{"MaxNumberOfMessages": 10, "WaitTimeSeconds": 1})
		var out struct{ Messages []queueAPIMessage }
		if status != 200 || json.Unmarshal(body, &out) != nil {
			t.Fatalf("receive: %d %s %s", status, typ, body)
		}
		got = append(got, out.Messages...)
		return len(got) >= n
	})
	if len(got) != n {
		t.Fatalf("queue %s gave %d messages; want %d", queue, len(got), n)
	}
	handles := []string{}
	for _, m := range got {
		handles = append(handles, m.ReceiptHandle)
	}
	status, typ, body := queueCall(t, srv, c, "POST", "/ember/v1/queues/"+queue+"/delete-messages", map[string]any{"ReceiptHandles": handles})
	if status != 200 || !strings.Contains(string(body), `"Deleted":`+strconv.Itoa(n)) {
		t.Fatalf("delete-messages: %d %s %s", status, typ, body)
	}
	return got
}

func queueRecord(t *testing.T, m queueAPIMessage) invocationRecord {
	t.Helper()
	var r invocationRecord
	if err := json.Unmarshal([]byte(m.Body), &r); err != nil {
		t.Fatalf("a queue message that is not a record: %q", m.Body)
	}
	return r
}

// Queues as OnSuccess and OnFailure destinations: Event invokes through
// the SDK, records read through the API and the CLI.
func TestAsyncQueueDestinations(t *testing.T) {
	t.Setenv("EMBER_ASYNC_TIME_SCALE", asyncTimeScale)
	srv, c, _ := startInvokeEmber(t)
	ctx := context.Background()
	me := srv.creds("default")
	createProbe(t, c, "work", nil)

	// Created with the CLI, or through the API.
	out, errOut, err := emberCLI(t, srv, "queue", "create", "failures")
	if err != nil || !strings.Contains(errOut, "created failures") || !strings.HasPrefix(out, "arn:aws:sqs:us-east-1:") {
		t.Fatalf("queue create: %v\n%s\n%s", err, out, errOut)
	}
	failARN := strings.TrimSpace(out)
	if out, errOut, err := emberCLI(t, srv, "queue", "create", "failures"); err != nil || !strings.Contains(errOut, "failures exists") || strings.TrimSpace(out) != failARN {
		t.Fatalf("queue create again: %v\n%s\n%s", err, out, errOut)
	}
	okARN := createTestQueue(t, srv, me, "successes")
	if !strings.HasSuffix(okARN, ":successes") || strings.Split(okARN, ":")[4] != strings.Split(failARN, ":")[4] {
		t.Fatalf("queue ARNs %s %s", okARN, failARN)
	}
	out, _, err = emberCLI(t, srv, "queue", "ls")
	if err != nil || !strings.Contains(out, "failures") || !strings.Contains(out, "successes") || !strings.Contains(out, okARN) {
		t.Fatalf("queue ls: %v\n%s", err, out)
	}

	// A queue that does not exist is refused, as Lambda refuses one.
	_, err = c.PutFunctionEventInvokeConfig(ctx, &lambda.PutFunctionEventInvokeConfigInput{
		FunctionName: aws.String("work"), DestinationConfig: destinations("", strings.TrimSuffix(failARN, "failures")+"nope"),
	})
	apiErr(t, err, "InvalidParameterValueException", 400)

	putConfig(t, c, &lambda.PutFunctionEventInvokeConfigInput{
		FunctionName: aws.String("work"), MaximumRetryAttempts: aws.Int32(1), DestinationConfig: destinations(okARN, failARN),
	})
	get, err := c.GetFunctionEventInvokeConfig(ctx, &lambda.GetFunctionEventInvokeConfigInput{FunctionName: aws.String("work")})
	if err != nil || aws.ToString(get.DestinationConfig.OnFailure.Destination) != failARN || aws.ToString(get.DestinationConfig.OnSuccess.Destination) != okARN {
		t.Fatalf("get config: %+v %v", get, err)
	}

	okID := invokeEvent(t, c, "work", map[string]any{"label": "fine"})
	failID := invokeEvent(t, c, "work", map[string]any{"mode": "error", "label": "bad"})

	// Through the API.
	r := queueRecord(t, receiveQueue(t, srv, me, "successes", 1)[0])
	if r.Version != "1.0" || r.RequestContext.RequestID != okID || r.RequestContext.Condition != "Success" ||
		r.RequestContext.ApproximateInvokeCount != 1 || string(r.RequestPayload) != `{"label":"fine"}` ||
		string(r.ResponsePayload) != `{"label":"fine"}` || !strings.HasSuffix(r.RequestContext.FunctionArn, ":function:work:$LATEST") {
		t.Fatalf("success record %+v %s %s", r.RequestContext, r.RequestPayload, r.ResponsePayload)
	}

	// Through the CLI: read prints the record, then deletes it.
	var cliOut string
	waitFor(t, "the failure record in the CLI", func() bool {
		cliOut, errOut, err = emberCLI(t, srv, "queue", "read", "failures", "--wait", "1s")
		if err != nil {
			t.Fatalf("queue read: %v\n%s", err, errOut)
		}
		return strings.Contains(cliOut, failID)
	})
	if !strings.Contains(cliOut, "--- message ") || !strings.Contains(cliOut, `"condition": "RetriesExhausted"`) ||
		!strings.Contains(cliOut, `"approximateInvokeCount": 2`) || !strings.Contains(cliOut, `"mode": "error"`) ||
		!strings.Contains(cliOut, "something went wrong: bad") {
		t.Fatalf("queue read printed:\n%s", cliOut)
	}
	waitFor(t, "both attempts in the function's log", func() bool { return startCount(t, srv, "work", failID) == 2 })
	// Read means gone.
	out, _, err = emberCLI(t, srv, "queue", "read", "failures", "--peek", "--json")
	if err != nil || strings.TrimSpace(out) != "[]" {
		t.Fatalf("peek after read: %v %q", err, out)
	}

	// --peek shows without taking; --json for scripts.
	id := invokeEvent(t, c, "work", map[string]any{"mode": "error", "label": "peeked"})
	var peeked []queueAPIMessage
	waitFor(t, "the record to peek at", func() bool {
		out, _, err = emberCLI(t, srv, "queue", "read", "failures", "--peek", "--json")
		peeked = nil
		return err == nil && json.Unmarshal([]byte(out), &peeked) == nil && len(peeked) == 1
	})
	if r := queueRecord(t, peeked[0]); r.RequestContext.RequestID != id || peeked[0].ReceiptHandle != "" {
		t.Fatalf("peeked %+v", peeked[0])
	}
	out, _, err = emberCLI(t, srv, "queue", "read", "failures", "--peek")
	if err != nil || !strings.Contains(out, id) {
		t.Fatalf("second peek: %v\n%s", err, out)
	}
	got := receiveQueue(t, srv, me, "failures", 1)
	if r := queueRecord(t, got[0]); r.RequestContext.RequestID != id || got[0].Attributes["ApproximateReceiveCount"] != "1" {
		t.Fatalf("received %+v", got[0])
	}
}

// Queues belong to their account; the API is signed; configs naming a
// queue keep it from being deleted unless forced, and records for a
// deleted queue are dropped and counted.
func TestAsyncQueueAccessAndDeletion(t *testing.T) {
	t.Setenv("EMBER_ASYNC_TIME_SCALE", asyncTimeScale)
	srv, c, _ := startInvokeEmber(t)
	ctx := context.Background()
	me := srv.creds("default")
	arn := createTestQueue(t, srv, me, "private")
	createProbe(t, c, "work", nil)
	putConfig(t, c, &lambda.PutFunctionEventInvokeConfigInput{
		FunctionName: aws.String("work"), MaximumRetryAttempts: aws.Int32(0), DestinationConfig: destinations("", arn),
	})
	invokeEvent(t, c, "work", map[string]any{"mode": "error", "label": "secret"})
	waitFor(t, "the record", func() bool {
		status, _, body := queueCall(t, srv, me, "GET", "/ember/v1/queues/private/messages", nil)
		return status == 200 && strings.Contains(string(body), "secret")
	})

	// Another account sees nothing of it, by name or ARN, and cannot
	// name it as a destination.
	otherCreds := srv.createAccount("other")
	for _, path := range []string{"/ember/v1/queues/private", "/ember/v1/queues/private/messages", "/ember/v1/queues/" + arn + "/messages"} {
		status, typ, body := queueCall(t, srv, otherCreds, "GET", path, nil)
		if status != 404 || typ != "ResourceNotFoundException" || strings.Contains(string(body), "secret") {
			t.Fatalf("another account's GET %s: %d %s %s", path, status, typ, body)
		}
	}
	for _, path := range []string{"/ember/v1/queues/private/receive", "/ember/v1/queues/" + arn + "/receive"} {
		if status, typ, body := queueCall(t, srv, otherCreds, "POST", path, map[string]any{}); status != 404 || typ != "ResourceNotFoundException" {
			t.Fatalf("another account's receive %s: %d %s %s", path, status, typ, body)
		}
	}
	if status, typ, body := queueCall(t, srv, otherCreds, "DELETE", "/ember/v1/queues/private?Force=true", nil); status != 404 {
		t.Fatalf("another account's delete: %d %s %s", status, typ, body)
	}
	if status, _, body := queueCall(t, srv, otherCreds, "GET", "/ember/v1/queues", nil); status != 200 || string(body) != `{"Queues":[]}` {
		t.Fatalf("another account's list: %d %s", status, body)
	}
	other := srv.client(otherCreds)
	createProbe(t, other, "theirs", nil)
	_, err := other.PutFunctionEventInvokeConfig(ctx, &lambda.PutFunctionEventInvokeConfigInput{
		FunctionName: aws.String("theirs"), DestinationConfig: destinations("", arn),
	})
	apiErr(t, err, "InvalidParameterValueException", 400)

	// Unsigned, or signed for another service: refused.
	resp, err := http.Get(srv.url + "/ember/v1/queues/private/messages")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 403 {
		t.Fatalf("unsigned: %d", resp.StatusCode)
	}
	rawErr(t, srv.signed(me, "GET", "/ember/v1/queues/private/messages", nil, time.Now(), nil), "InvalidSignatureException", 403)

	// Validation.
	for _, in := range []map[string]any{{"QueueName": "a.fifo"}, {"QueueName": ""}, {"QueueName": strings.Repeat("x", 81)},
		{"QueueName": "ok", "MessageRetentionPeriod": 59}, {"QueueName": "ok", "VisibilityTimeout": 0}} {
		if status, typ, body := queueCall(t, srv, me, "POST", "/ember/v1/queues", in); status != 400 || typ != "InvalidParameterValueException" {
			t.Fatalf("create %v: %d %s %s", in, status, typ, body)
		}
	}
	if status, typ, _ := queueCall(t, srv, me, "POST", "/ember/v1/queues", map[string]any{"QueueName": "private", "VisibilityTimeout": 99}); status != 409 || typ != "ResourceConflictException" {
		t.Fatalf("create with other attributes: %d %s", status, typ)
	}
	if status, typ, _ := queueCall(t, srv, me, "POST", "/ember/v1/queues/private/receive", map[string]any{"MaxNumberOfMessages": 101}); status != 400 || typ != "InvalidParameterValueException" {
		t.Fatalf("receive 101: %d %s", status, typ)
	}
	if status, _, body := queueCall(t, srv, me, "POST", "/ember/v1/queues/private/delete-messages", map[string]any{"ReceiptHandles": []string{"forged"}}); status != 200 || !strings.Contains(string(body), `"Failed":["forged"]`) {
		t.Fatalf("delete of a forged handle: %d %s", status, body)
	}

	// In use: not deleted, unless forced.
	status, typ, body := queueCall(t, srv, me, "DELETE", "/ember/v1/queues/private", nil)
	if status != 409 || typ != "ResourceConflictException" || !strings.Contains(string(body), "OnFailure destination of work:$LATEST") {
		t.Fatalf("delete of a queue in use: %d %s %s", status, typ, body)
	}
	_, errOut, err := emberCLI(t, srv, "queue", "rm", "private")
	if err == nil || !strings.Contains(errOut, "ResourceConflictException") {
		t.Fatalf("queue rm of a queue in use: %v\n%s", err, errOut)
	}
	_, errOut, err = emberCLI(t, srv, "queue", "rm", "private", "--force")
	if err != nil || !strings.Contains(errOut, "deleted private") {
		t.Fatalf("queue rm --force: %v\n%s", err, errOut)
	}
	if status, typ, _ := queueCall(t, srv, me, "GET", "/ember/v1/queues/private", nil); status != 404 || typ != "ResourceNotFoundException" {
		t.Fatalf("get after delete: %d %s", status, typ)
	}
	// A record for it now is dropped and counted.
	dropped := scrapeMetrics(t, srv, "")["ember_async_events_dropped_total"]
	invokeEvent(t, c, "work", map[string]any{"mode": "error", "label": "lost"})
	waitFor(t, "the record for a deleted queue to be dropped", func() bool {
		return scrapeMetrics(t, srv, "")["ember_async_events_dropped_total"] == dropped+1
	})
	// Made again, it is a new, empty queue.
	createTestQueue(t, srv, me, "private")
	if status, _, body := queueCall(t, srv, me, "GET", "/ember/v1/queues/private/messages", nil); status != 200 || string(body) != `{"Messages":[]}` {
		t.Fatalf("a queue made again: %d %s", status, body)
	}
}

// DeadLetterConfig: a function's failed events without OnFailure go to
// its queue, with Lambda's attributes.
func TestAsyncDeadLetterQueue(t *testing.T) {
	t.Setenv("EMBER_ASYNC_TIME_SCALE", asyncTimeScale)
	srv, c, _ := startInvokeEmber(t)
	ctx := context.Background()
	me := srv.creds("default")
	arn := createTestQueue(t, srv, me, "dlq")
	missing := strings.TrimSuffix(arn, "dlq") + "missing"

	_, err := c.CreateFunction(ctx, func() *lambda.CreateFunctionInput {
		in := createInput("dead", probe(t))
		in.DeadLetterConfig = &types.DeadLetterConfig{TargetArn: aws.String(missing)}
		return in
	}())
	apiErr(t, err, "InvalidParameterValueException", 400)
	createProbe(t, c, "dead", func(in *lambda.CreateFunctionInput) {
		in.DeadLetterConfig = &types.DeadLetterConfig{TargetArn: aws.String(arn)}
	})
	cfg, err := c.GetFunctionConfiguration(ctx, &lambda.GetFunctionConfigurationInput{FunctionName: aws.String("dead")})
	if err != nil || cfg.DeadLetterConfig == nil || aws.ToString(cfg.DeadLetterConfig.TargetArn) != arn {
		t.Fatalf("configuration: %+v %v", cfg.DeadLetterConfig, err)
	}
	_, err = c.UpdateFunctionConfiguration(ctx, &lambda.UpdateFunctionConfigurationInput{
		FunctionName: aws.String("dead"), DeadLetterConfig: &types.DeadLetterConfig{TargetArn: aws.String(missing)},
	})
	apiErr(t, err, "InvalidParameterValueException", 400)
	putConfig(t, c, &lambda.PutFunctionEventInvokeConfigInput{FunctionName: aws.String("dead"), MaximumRetryAttempts: aws.Int32(0)})

	id := invokeEvent(t, c, "dead", map[string]any{"mode": "error", "label": "to the dlq"})
	m := receiveQueue(t, srv, me, "dlq", 1)[0]
	a := m.MessageAttributes
	if m.Body != `{"label":"to the dlq","mode":"error"}` || a["RequestID"] != id || a["ErrorCode"] != "200" ||
		!strings.Contains(a["ErrorMessage"], "something went wrong: to the dlq") {
		t.Fatalf("dead-letter message %+v", m)
	}
	// The CLI shows the attributes.
	id = invokeEvent(t, c, "dead", map[string]any{"mode": "error", "label": "cli"})
	var out string
	waitFor(t, "the dead-letter message in the CLI", func() bool {
		out, _, err = emberCLI(t, srv, "queue", "read", "dlq", "--wait", "1s")
		return err == nil && strings.Contains(out, "RequestID: "+id)
	})
	if !strings.Contains(out, "ErrorCode: 200") || !strings.Contains(out, "ErrorMessage: something went wrong: cli") || !strings.Contains(out, `"label": "cli"`) {
		t.Fatalf("queue read printed:\n%s", out)
	}

	// An OnFailure destination takes precedence.
	sink := createTestQueue(t, srv, me, "sink")
	putConfig(t, c, &lambda.PutFunctionEventInvokeConfigInput{
		FunctionName: aws.String("dead"), MaximumRetryAttempts: aws.Int32(0), DestinationConfig: destinations("", sink),
	})
	id = invokeEvent(t, c, "dead", map[string]any{"mode": "error", "label": "dest"})
	if r := queueRecord(t, receiveQueue(t, srv, me, "sink", 1)[0]); r.RequestContext.RequestID != id {
		t.Fatalf("sink got %+v", r.RequestContext)
	}
	if status, _, body := queueCall(t, srv, me, "GET", "/ember/v1/queues/dlq/messages", nil); status != 200 || string(body) != `{"Messages":[]}` {
		t.Fatalf("the dead-letter queue got the event too: %s", body)
	}

	// The dead-letter config keeps the queue from being deleted.
	if status, typ, body := queueCall(t, srv, me, "DELETE", "/ember/v1/queues/dlq", nil); status != 409 || !strings.Contains(string(body), "dead-letter config of dead:$LATEST") {
		t.Fatalf("delete of a dead-letter queue: %d %s %s", status, typ, body)
	}
	// An empty TargetArn removes it.
	up, err := c.UpdateFunctionConfiguration(ctx, &lambda.UpdateFunctionConfigurationInput{
		FunctionName: aws.String("dead"), DeadLetterConfig: &types.DeadLetterConfig{TargetArn: aws.String("")},
	})
	if err != nil || up.DeadLetterConfig != nil && aws.ToString(up.DeadLetterConfig.TargetArn) != "" {
		t.Fatalf("removing the dead-letter config: %+v %v", up, err)
	}
	if status, _, body := queueCall(t, srv, me, "DELETE", "/ember/v1/queues/dlq", nil); status != 204 {
		t.Fatalf("delete of a queue no longer used: %d %s", status, body)
	}
}

// The event invoke configs of a deleted version or alias go with it.
func TestAsyncConfigsOfDeletedVersionsAndAliases(t *testing.T) {
	_, c, _ := startInvokeEmber(t)
	ctx := context.Background()
	createProbe(t, c, "fn", nil)
	v, err := c.PublishVersion(ctx, &lambda.PublishVersionInput{FunctionName: aws.String("fn")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateAlias(ctx, &lambda.CreateAliasInput{FunctionName: aws.String("fn"), Name: aws.String("live"), FunctionVersion: v.Version}); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"", *v.Version, "live"} {
		in := &lambda.PutFunctionEventInvokeConfigInput{FunctionName: aws.String("fn"), MaximumRetryAttempts: aws.Int32(1)}
		if q != "" {
			in.Qualifier = aws.String(q)
		}
		putConfig(t, c, in)
	}
	count := func() int {
		list, err := c.ListFunctionEventInvokeConfigs(ctx, &lambda.ListFunctionEventInvokeConfigsInput{FunctionName: aws.String("fn")})
		if err != nil {
			t.Fatal(err)
		}
		return len(list.FunctionEventInvokeConfigs)
	}
	if n := count(); n != 3 {
		t.Fatalf("%d configs; want 3", n)
	}
	if _, err := c.DeleteAlias(ctx, &lambda.DeleteAliasInput{FunctionName: aws.String("fn"), Name: aws.String("live")}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the alias's config to go", func() bool { return count() == 2 })
	if _, err := c.DeleteFunction(ctx, &lambda.DeleteFunctionInput{FunctionName: aws.String("fn"), Qualifier: v.Version}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the version's config to go", func() bool { return count() == 1 })
	// An alias made again under that name starts without one.
	if _, err := c.CreateAlias(ctx, &lambda.CreateAliasInput{FunctionName: aws.String("fn"), Name: aws.String("live"), FunctionVersion: aws.String("$LATEST")}); err != nil {
		t.Fatal(err)
	}
	_, err = c.GetFunctionEventInvokeConfig(ctx, &lambda.GetFunctionEventInvokeConfigInput{FunctionName: aws.String("fn"), Qualifier: aws.String("live")})
	apiErr(t, err, "ResourceNotFoundException", 404)
}
