package main

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"

	"github.com/emberfn/ember/internal/natsd"
	"github.com/emberfn/ember/internal/worker"
	"github.com/emberfn/ember/internal/workermanager"
)

// Two Embers share one NATS. A function changed through one is seen by
// the other's Front End only through its watch of the functions bucket (the
// control API tells its own Front End alone): the other retires the
// sandboxes of the old configuration, invokes the new one, and answers
// 404 once the function is deleted.
func TestConfigWatchAcrossEmbers(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	ns := startExternalNATS(t, dir)
	start := func() (*emberServer, *lambda.Client, *dataPlane) {
		dp := &dataPlane{}
		srv := startEmber(t, dir, func(c *serveConfig) {
			c.NATSURL = ns.ClientURL()
			c.onDataPlane = func(m *workermanager.Manager, w *worker.Worker) { dp.manager, dp.worker = m, w }
		})
		srv.noLeakCheck = true // the two share a process: checked once, above
		return srv, srv.client(srv.creds("default")), dp
	}
	_, a, dpA := start()
	_, b, dpB := start()

	envOf := func(c *lambda.Client) (greeting string, started any) {
		t.Helper()
		out, err := c.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("probe"), Payload: []byte(`{"mode":"env"}`)})
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(out.Payload, &m); err != nil || out.FunctionError != nil {
			t.Fatalf("env: %v %s", out.FunctionError, out.Payload)
		}
		greeting, _ = m["env"].(map[string]any)["GREETING"].(string)
		return greeting, m["started"]
	}
	update := func(greeting string) {
		t.Helper()
		if _, err := a.UpdateFunctionConfiguration(ctx, &lambda.UpdateFunctionConfigurationInput{FunctionName: aws.String("probe"),
			Environment: &types.Environment{Variables: map[string]string{"GREETING": greeting}}}); err != nil {
			t.Fatal(err)
		}
	}

	// Created through A, invoked through B: B reads and caches it and
	// keeps a warm sandbox of it.
	createProbe(t, a, "probe", func(in *lambda.CreateFunctionInput) {
		in.Environment = &types.Environment{Variables: map[string]string{"GREETING": "v1"}}
	})
	g, first := envOf(b)
	if g != "v1" {
		t.Fatalf("B runs GREETING=%q, want v1", g)
	}
	if g, again := envOf(b); g != "v1" || again != first || dpB.worker.Sandboxes() != 1 || dpA.worker.Sandboxes() != 0 {
		t.Fatalf("B's second invoke: GREETING=%q, warm %v; sandboxes A %d B %d", g, again == first,
			dpA.worker.Sandboxes(), dpB.worker.Sandboxes())
	}

	// Updated through A: B's watch retires B's sandbox of the old
	// configuration, and B's next invoke runs the new one (had only the
	// sandbox gone and not B's cached configuration, it would run v1
	// again in a new sandbox).
	update("v2")
	waitFor(t, "B to retire its sandbox of the old configuration", func() bool { return dpB.worker.Sandboxes() == 0 })
	if g, started := envOf(b); g != "v2" || started == first {
		t.Fatalf("B after the update through A: GREETING=%q, new sandbox %v", g, started != first)
	}
	if dpA.worker.Sandboxes() != 0 {
		t.Fatalf("A has %d sandboxes; it ran nothing", dpA.worker.Sandboxes())
	}

	// Deleted through A: B answers 404 once its watch has told it.
	if _, err := a.DeleteFunction(ctx, &lambda.DeleteFunctionInput{FunctionName: aws.String("probe")}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "B to retire the deleted function's sandbox", func() bool { return dpB.worker.Sandboxes() == 0 })
	_, err := b.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("probe")})
	apiErr(t, err, "ResourceNotFoundException", 404)
}

// startExternalNATS starts a NATS server of the test's own for Embers on
// dataDir to use (serveConfig.NATSURL), as `--nats` does. Call it before
// they start: its cleanup runs after theirs, stops it, and then checks
// that nothing of theirs was left (so they can set noLeakCheck).
func startExternalNATS(t *testing.T, dataDir string) *natsd.Server {
	t.Helper()
	base := takeBaseline()
	ns, err := natsd.Start(natsd.Config{StoreDir: t.TempDir(), Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ns.Shutdown()
		base.check(t, dataDir)
	})
	return ns
}
