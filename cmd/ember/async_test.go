package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"
)

// asyncTimeScale makes Lambda's async delays test-sized: retries after 3 s
// and 6 s, a maximum event age of 60 s lasts 3 s.
const asyncTimeScale = "0.05"

// recorderSource is a destination function: it writes every event it
// gets on one line "RECORD <event>" (read back through the logs API) and
// answers it.
const recorderSource = `package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
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
		var b bytes.Buffer
		_ = json.Compact(&b, body)
		fmt.Printf("RECORD %s\n", b.String())
		r, err := http.Post(api+id+"/response", "application/json", bytes.NewReader(body))
		if err == nil {
			r.Body.Close()
		}
	}
}
`

// recorder is the zip of recorderSource, built once per test binary.
func recorder(t *testing.T) []byte { return goSourceZip(t, "recorder", recorderSource) }

func createRecorder(t *testing.T, c *lambda.Client, name string) string {
	t.Helper()
	out, err := c.CreateFunction(context.Background(), createInput(name, recorder(t)))
	if err != nil {
		t.Fatal(err)
	}
	return aws.ToString(out.FunctionArn)
}

// invocationRecord is Lambda's record as a destination gets it.
type invocationRecord struct {
	Version        string `json:"version"`
	Timestamp      string `json:"timestamp"`
	RequestContext struct {
		RequestID              string `json:"requestId"`
		FunctionArn            string `json:"functionArn"`
		Condition              string `json:"condition"`
		ApproximateInvokeCount int    `json:"approximateInvokeCount"`
	} `json:"requestContext"`
	RequestPayload  json.RawMessage `json:"requestPayload"`
	ResponseContext *struct {
		StatusCode      int    `json:"statusCode"`
		ExecutedVersion string `json:"executedVersion"`
		FunctionError   string `json:"functionError"`
	} `json:"responseContext"`
	ResponsePayload json.RawMessage `json:"responsePayload"`
}

// records reads what a recorder function got, from its log.
func records(t *testing.T, srv *emberServer, function string) []invocationRecord {
	t.Helper()
	var out []invocationRecord
	for _, e := range groupEvents(t, srv.logsClient(srv.creds("default")), "/aws/lambda/"+function) {
		m, ok := strings.CutPrefix(aws.ToString(e.Message), "RECORD ")
		if !ok {
			continue
		}
		var r invocationRecord
		if err := json.Unmarshal([]byte(strings.TrimSpace(m)), &r); err != nil {
			t.Fatalf("a record that is not JSON: %q", m)
		}
		out = append(out, r)
	}
	return out
}

// waitRecord waits for the record of requestID at a recorder function.
func waitRecord(t *testing.T, srv *emberServer, function, requestID string) invocationRecord {
	t.Helper()
	var found invocationRecord
	waitFor(t, "the record of "+requestID+" at "+function, func() bool {
		for _, r := range records(t, srv, function) {
			if r.RequestContext.RequestID == requestID {
				found = r
				return true
			}
		}
		return false
	})
	return found
}

// invokeEvent sends an Event invoke and checks the 202.
func invokeEvent(t *testing.T, c *lambda.Client, name string, payload any) string {
	t.Helper()
	b, _ := json.Marshal(payload)
	out, err := c.Invoke(context.Background(), &lambda.InvokeInput{
		FunctionName: aws.String(name), Payload: b, InvocationType: types.InvocationTypeEvent,
	})
	if err != nil {
		t.Fatalf("event invoke of %s: %v", name, err)
	}
	if out.StatusCode != 202 || len(out.Payload) != 0 {
		t.Fatalf("event invoke answered %d %q; want 202 and no body", out.StatusCode, out.Payload)
	}
	return requestIDOf(t, out)
}

// startCount counts the START lines of one request id in a function's log:
// the attempts the function saw.
func startCount(t *testing.T, srv *emberServer, function, requestID string) int {
	t.Helper()
	n := 0
	for _, e := range groupEvents(t, srv.logsClient(srv.creds("default")), "/aws/lambda/"+function) {
		if strings.HasPrefix(aws.ToString(e.Message), "START RequestId: "+requestID+" ") {
			n++
		}
	}
	return n
}

func putConfig(t *testing.T, c *lambda.Client, in *lambda.PutFunctionEventInvokeConfigInput) {
	t.Helper()
	if _, err := c.PutFunctionEventInvokeConfig(context.Background(), in); err != nil {
		t.Fatal(err)
	}
}

func destinations(onSuccess, onFailure string) *types.DestinationConfig {
	d := &types.DestinationConfig{}
	if onSuccess != "" {
		d.OnSuccess = &types.OnSuccess{Destination: aws.String(onSuccess)}
	}
	if onFailure != "" {
		d.OnFailure = &types.OnFailure{Destination: aws.String(onFailure)}
	}
	return d
}

// An Event invoke answers 202 with a request id; the event runs, and its
// outcome reaches the destinations with Lambda's record; a function error
// is retried as configured.
func TestAsyncInvokeRetriesAndDestinations(t *testing.T) {
	t.Setenv("EMBER_ASYNC_TIME_SCALE", asyncTimeScale)
	srv, c, _ := startInvokeEmber(t)
	createProbe(t, c, "work", nil)
	okARN := createRecorder(t, c, "sink-ok")
	failARN := createRecorder(t, c, "sink-fail")
	putConfig(t, c, &lambda.PutFunctionEventInvokeConfigInput{
		FunctionName:         aws.String("work"),
		MaximumRetryAttempts: aws.Int32(1),
		DestinationConfig:    destinations(okARN, failARN),
	})

	id := invokeEvent(t, c, "work", map[string]any{"label": "hello"})
	r := waitRecord(t, srv, "sink-ok", id)
	if r.Version != "1.0" || r.Timestamp == "" || r.RequestContext.Condition != "Success" ||
		r.RequestContext.ApproximateInvokeCount != 1 ||
		!strings.HasSuffix(r.RequestContext.FunctionArn, ":function:work:$LATEST") {
		t.Fatalf("success record: %+v", r)
	}
	if string(r.RequestPayload) != `{"label":"hello"}` || string(r.ResponsePayload) != `{"label":"hello"}` {
		t.Fatalf("success record payloads: %s %s", r.RequestPayload, r.ResponsePayload)
	}
	if rc := r.ResponseContext; rc == nil || rc.StatusCode != 200 || rc.ExecutedVersion != "$LATEST" || rc.FunctionError != "" {
		t.Fatalf("success record response context: %+v", rc)
	}

	id = invokeEvent(t, c, "work", map[string]any{"mode": "error", "label": "bad"})
	r = waitRecord(t, srv, "sink-fail", id)
	if r.RequestContext.Condition != "RetriesExhausted" || r.RequestContext.ApproximateInvokeCount != 2 {
		t.Fatalf("failure record: %+v", r.RequestContext)
	}
	if rc := r.ResponseContext; rc == nil || rc.FunctionError != "Unhandled" || !strings.Contains(string(r.ResponsePayload), "something went wrong: bad") {
		t.Fatalf("failure record response: %+v %s", rc, r.ResponsePayload)
	}
	waitFor(t, "both attempts in the function's log", func() bool { return startCount(t, srv, "work", id) == 2 })
	if n := len(records(t, srv, "sink-ok")); n != 1 {
		t.Fatalf("sink-ok got %d records; want 1", n)
	}

	// No retries at all.
	putConfig(t, c, &lambda.PutFunctionEventInvokeConfigInput{
		FunctionName:         aws.String("work"),
		MaximumRetryAttempts: aws.Int32(0),
		DestinationConfig:    destinations("", failARN),
	})
	id = invokeEvent(t, c, "work", map[string]any{"mode": "error", "label": "once"})
	r = waitRecord(t, srv, "sink-fail", id)
	if r.RequestContext.Condition != "RetriesExhausted" || r.RequestContext.ApproximateInvokeCount != 1 {
		t.Fatalf("failure record without retries: %+v", r.RequestContext)
	}
}

// An event older than MaximumEventAgeInSeconds goes to OnFailure with
// EventAgeExceeded.
func TestAsyncMaximumEventAge(t *testing.T) {
	t.Setenv("EMBER_ASYNC_TIME_SCALE", asyncTimeScale)
	srv, c, _ := startInvokeEmber(t)
	createProbe(t, c, "aging", nil)
	failARN := createRecorder(t, c, "sink")
	putConfig(t, c, &lambda.PutFunctionEventInvokeConfigInput{
		FunctionName:             aws.String("aging"),
		MaximumRetryAttempts:     aws.Int32(2),
		MaximumEventAgeInSeconds: aws.Int32(60), // 3 s scaled; the first retry comes after 3 s
		DestinationConfig:        destinations("", failARN),
	})
	id := invokeEvent(t, c, "aging", map[string]any{"mode": "error", "label": "old"})
	r := waitRecord(t, srv, "sink", id)
	if r.RequestContext.Condition != "EventAgeExceeded" || r.RequestContext.ApproximateInvokeCount != 1 {
		t.Fatalf("expired record: %+v", r.RequestContext)
	}
	if r.ResponseContext == nil || r.ResponseContext.FunctionError != "Unhandled" {
		t.Fatalf("expired record response: %+v", r.ResponseContext)
	}
}

// An accepted event survives a restart of Ember before it ran.
func TestAsyncEventSurvivesRestart(t *testing.T) {
	t.Setenv("EMBER_ASYNC_TIME_SCALE", asyncTimeScale)
	dir := t.TempDir()
	srv := startEmber(t, dir)
	c := srv.client(srv.creds("default"))
	ctx := context.Background()
	createProbe(t, c, "later", nil)
	okARN := createRecorder(t, c, "sink")
	putConfig(t, c, &lambda.PutFunctionEventInvokeConfigInput{
		FunctionName: aws.String("later"), DestinationConfig: destinations(okARN, ""),
	})
	// Reserved concurrency 0: the event is accepted but throttled, so it
	// cannot run before the restart.
	if _, err := c.PutFunctionConcurrency(ctx, &lambda.PutFunctionConcurrencyInput{
		FunctionName: aws.String("later"), ReservedConcurrentExecutions: aws.Int32(0),
	}); err != nil {
		t.Fatal(err)
	}
	id := invokeEvent(t, c, "later", map[string]any{"label": "durable"})
	waitFor(t, "a throttled attempt", func() bool { return scrapeMetrics(t, srv, "")["ember_async_retries_total"] >= 1 })
	if n := startCount(t, srv, "later", id); n != 0 {
		t.Fatalf("the throttled event ran %d times before the restart", n)
	}
	srv.stop()

	srv = startEmber(t, dir)
	c = srv.client(srv.creds("default"))
	if _, err := c.DeleteFunctionConcurrency(ctx, &lambda.DeleteFunctionConcurrencyInput{FunctionName: aws.String("later")}); err != nil {
		t.Fatal(err)
	}
	r := waitRecord(t, srv, "sink", id)
	if r.RequestContext.Condition != "Success" || r.RequestContext.ApproximateInvokeCount != 1 ||
		string(r.RequestPayload) != `{"label":"durable"}` {
		t.Fatalf("record after the restart: %+v %s", r.RequestContext, r.RequestPayload)
	}
}

// Event payloads are limited to 1 MB; Event invokes of unknown functions
// are 404.
func TestAsyncInvokeLimits(t *testing.T) {
	t.Setenv("EMBER_ASYNC_TIME_SCALE", asyncTimeScale)
	_, c, _ := startInvokeEmber(t)
	createProbe(t, c, "big", nil)
	ctx := context.Background()
	payload := func(n int) []byte { return []byte(`"` + strings.Repeat("x", n-2) + `"`) }
	_, err := c.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("big"), Payload: payload(1<<20 + 1), InvocationType: types.InvocationTypeEvent})
	apiErr(t, err, "RequestTooLargeException", 413)
	out, err := c.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("big"), Payload: payload(1 << 20), InvocationType: types.InvocationTypeEvent})
	if err != nil || out.StatusCode != 202 {
		t.Fatalf("a 1,048,576-byte event: %v %v", out, err)
	}
	_, err = c.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("nobody"), Payload: []byte(`{}`), InvocationType: types.InvocationTypeEvent})
	apiErr(t, err, "ResourceNotFoundException", 404)
	_, err = c.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("big"), Payload: []byte(`{`), InvocationType: types.InvocationTypeEvent})
	apiErr(t, err, "InvalidRequestContentException", 400)
}

// The event-invoke-config API: Put, Get, Update, List, Delete, and its
// validation.
func TestEventInvokeConfigAPI(t *testing.T) {
	srv, c, _ := startInvokeEmber(t)
	ctx := context.Background()
	createProbe(t, c, "cfg", nil)
	if _, err := c.PublishVersion(ctx, &lambda.PublishVersionInput{FunctionName: aws.String("cfg")}); err != nil {
		t.Fatal(err)
	}
	sinkARN := createRecorder(t, c, "sink")

	_, err := c.GetFunctionEventInvokeConfig(ctx, &lambda.GetFunctionEventInvokeConfigInput{FunctionName: aws.String("cfg")})
	apiErr(t, err, "ResourceNotFoundException", 404)
	_, err = c.UpdateFunctionEventInvokeConfig(ctx, &lambda.UpdateFunctionEventInvokeConfigInput{FunctionName: aws.String("cfg"), MaximumRetryAttempts: aws.Int32(1)})
	apiErr(t, err, "ResourceNotFoundException", 404)
	_, err = c.PutFunctionEventInvokeConfig(ctx, &lambda.PutFunctionEventInvokeConfigInput{FunctionName: aws.String("nobody")})
	apiErr(t, err, "ResourceNotFoundException", 404)
	_, err = c.PutFunctionEventInvokeConfig(ctx, &lambda.PutFunctionEventInvokeConfigInput{FunctionName: aws.String("cfg"), Qualifier: aws.String("7")})
	apiErr(t, err, "ResourceNotFoundException", 404)

	bad := []*lambda.PutFunctionEventInvokeConfigInput{
		{MaximumRetryAttempts: aws.Int32(3)},
		{MaximumRetryAttempts: aws.Int32(-1)},
		{MaximumEventAgeInSeconds: aws.Int32(59)},
		{MaximumEventAgeInSeconds: aws.Int32(21601)},
		{DestinationConfig: destinations("arn:aws:sqs:us-east-1:123456789012:queue", "")},
		{DestinationConfig: destinations("", "arn:aws:lambda:us-east-1:999999999999:function:other")},
		{DestinationConfig: destinations("not-an-arn", "")},
	}
	for i, in := range bad {
		in.FunctionName = aws.String("cfg")
		_, err := c.PutFunctionEventInvokeConfig(ctx, in)
		// The four ranges are the API model's (ValidationException), the
		// destinations Lambda's own checks.
		typ := "InvalidParameterValueException"
		if i < 4 {
			typ = "ValidationException"
		}
		t.Run(fmt.Sprint(i), func(t *testing.T) { apiErr(t, err, typ, 400) })
	}

	put, err := c.PutFunctionEventInvokeConfig(ctx, &lambda.PutFunctionEventInvokeConfigInput{
		FunctionName: aws.String("cfg"), MaximumRetryAttempts: aws.Int32(1), MaximumEventAgeInSeconds: aws.Int32(120),
		DestinationConfig: destinations("", sinkARN),
	})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(aws.ToString(put.FunctionArn), ":function:cfg:$LATEST") || aws.ToInt32(put.MaximumRetryAttempts) != 1 ||
		aws.ToInt32(put.MaximumEventAgeInSeconds) != 120 || put.LastModified == nil ||
		aws.ToString(put.DestinationConfig.OnFailure.Destination) != sinkARN {
		t.Fatalf("put answered %+v", put)
	}
	// Update changes only what it names.
	up, err := c.UpdateFunctionEventInvokeConfig(ctx, &lambda.UpdateFunctionEventInvokeConfigInput{
		FunctionName: aws.String("cfg"), MaximumRetryAttempts: aws.Int32(0),
	})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToInt32(up.MaximumRetryAttempts) != 0 || aws.ToInt32(up.MaximumEventAgeInSeconds) != 120 ||
		aws.ToString(up.DestinationConfig.OnFailure.Destination) != sinkARN {
		t.Fatalf("update answered %+v", up)
	}
	get, err := c.GetFunctionEventInvokeConfig(ctx, &lambda.GetFunctionEventInvokeConfigInput{FunctionName: aws.String("cfg")})
	if err != nil || aws.ToInt32(get.MaximumRetryAttempts) != 0 || aws.ToInt32(get.MaximumEventAgeInSeconds) != 120 {
		t.Fatalf("get answered %+v %v", get, err)
	}
	// Put replaces: what it does not name is gone.
	putConfig(t, c, &lambda.PutFunctionEventInvokeConfigInput{FunctionName: aws.String("cfg"), MaximumEventAgeInSeconds: aws.Int32(300)})
	get, err = c.GetFunctionEventInvokeConfig(ctx, &lambda.GetFunctionEventInvokeConfigInput{FunctionName: aws.String("cfg")})
	if err != nil || get.MaximumRetryAttempts != nil || aws.ToInt32(get.MaximumEventAgeInSeconds) != 300 ||
		(get.DestinationConfig != nil && get.DestinationConfig.OnFailure != nil && get.DestinationConfig.OnFailure.Destination != nil) {
		t.Fatalf("get after put answered %+v %v", get, err)
	}
	putConfig(t, c, &lambda.PutFunctionEventInvokeConfigInput{FunctionName: aws.String("cfg"), Qualifier: aws.String("1"), MaximumRetryAttempts: aws.Int32(2)})

	list, err := c.ListFunctionEventInvokeConfigs(ctx, &lambda.ListFunctionEventInvokeConfigsInput{FunctionName: aws.String("cfg")})
	if err != nil || len(list.FunctionEventInvokeConfigs) != 2 {
		t.Fatalf("list answered %+v %v", list, err)
	}
	page, err := c.ListFunctionEventInvokeConfigs(ctx, &lambda.ListFunctionEventInvokeConfigsInput{FunctionName: aws.String("cfg"), MaxItems: aws.Int32(1)})
	if err != nil || len(page.FunctionEventInvokeConfigs) != 1 || page.NextMarker == nil {
		t.Fatalf("first page %+v %v", page, err)
	}
	page2, err := c.ListFunctionEventInvokeConfigs(ctx, &lambda.ListFunctionEventInvokeConfigsInput{FunctionName: aws.String("cfg"), MaxItems: aws.Int32(1), Marker: page.NextMarker})
	if err != nil || len(page2.FunctionEventInvokeConfigs) != 1 || page2.NextMarker != nil ||
		aws.ToString(page2.FunctionEventInvokeConfigs[0].FunctionArn) == aws.ToString(page.FunctionEventInvokeConfigs[0].FunctionArn) {
		t.Fatalf("second page %+v %v", page2, err)
	}

	if _, err := c.DeleteFunctionEventInvokeConfig(ctx, &lambda.DeleteFunctionEventInvokeConfigInput{FunctionName: aws.String("cfg")}); err != nil {
		t.Fatal(err)
	}
	_, err = c.GetFunctionEventInvokeConfig(ctx, &lambda.GetFunctionEventInvokeConfigInput{FunctionName: aws.String("cfg")})
	apiErr(t, err, "ResourceNotFoundException", 404)
	_, err = c.DeleteFunctionEventInvokeConfig(ctx, &lambda.DeleteFunctionEventInvokeConfigInput{FunctionName: aws.String("cfg")})
	apiErr(t, err, "ResourceNotFoundException", 404)

	// Another account sees none of it.
	other := srv.client(srv.createAccount("other"))
	_, err = other.GetFunctionEventInvokeConfig(ctx, &lambda.GetFunctionEventInvokeConfigInput{FunctionName: aws.String("cfg"), Qualifier: aws.String("1")})
	apiErr(t, err, "ResourceNotFoundException", 404)

	// A deleted function's configs go with it.
	putConfig(t, c, &lambda.PutFunctionEventInvokeConfigInput{FunctionName: aws.String("cfg"), MaximumRetryAttempts: aws.Int32(1)})
	if _, err := c.DeleteFunction(ctx, &lambda.DeleteFunctionInput{FunctionName: aws.String("cfg")}); err != nil {
		t.Fatal(err)
	}
	createProbe(t, c, "cfg", nil)
	waitFor(t, "the configs of the deleted function to go", func() bool {
		list, err := c.ListFunctionEventInvokeConfigs(ctx, &lambda.ListFunctionEventInvokeConfigsInput{FunctionName: aws.String("cfg")})
		return err == nil && len(list.FunctionEventInvokeConfigs) == 0
	})
}
