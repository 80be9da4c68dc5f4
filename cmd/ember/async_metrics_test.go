package main

import (
	"context"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"
)

// The async queue's depth, age and counts are on /metrics.
func TestAsyncMetrics(t *testing.T) {
	srv, c, _ := startInvokeEmber(t)
	createProbe(t, c, "evented", nil)
	scrape := func(name string) float64 {
		v, ok := scrapeMetrics(t, srv, "")[name]
		if !ok {
			t.Fatalf("no %s in /metrics", name)
		}
		return v
	}
	before := scrape("ember_async_events_accepted_total")
	for range 3 {
		out, err := c.Invoke(context.Background(), &lambda.InvokeInput{FunctionName: aws.String("evented"),
			InvocationType: types.InvocationTypeEvent, Payload: []byte(`{"x":1}`)})
		if err != nil || out.StatusCode != 202 {
			t.Fatalf("event invoke: %v %v", out, err)
		}
	}
	if got := scrape("ember_async_events_accepted_total") - before; got != 3 {
		t.Fatalf("accepted moved by %v, want 3", got)
	}
	waitFor(t, "the queue to drain", func() bool { return scrape("ember_async_queue_depth") == 0 })
	if age := scrape("ember_async_oldest_event_age_seconds"); age != 0 {
		t.Fatalf("oldest age %v with an empty queue", age)
	}
	// The pollers' adaptive limit (between 2 and 64, 8 at the start; the
	// three events can have moved it a step at most) and their places.
	if limit := scrape("ember_async_pollers_limit"); limit < 2 || limit > 64 {
		t.Fatalf("pollers' limit %v, want 2 to 64", limit)
	}
	if running := scrape("ember_async_pollers_running"); running < 0 || running > 64 {
		t.Fatalf("pollers running %v", running)
	}
}
