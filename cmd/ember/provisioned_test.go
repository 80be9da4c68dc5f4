package main

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"

	"github.com/emberfn/ember/internal/worker"
	"github.com/emberfn/ember/internal/workermanager"
)

// TestProvisionedConcurrency: provisioned sandboxes of a version exist
// before its first invoke, which is warm and sees
// AWS_LAMBDA_INITIALIZATION_TYPE=provisioned-concurrency; $LATEST is
// refused; deleting the configuration removes the sandboxes.
func TestProvisionedConcurrency(t *testing.T) {
	_, c, dp := startInvokeEmber(t)
	ctx := context.Background()
	createProbe(t, c, "pc", nil)
	publish(t, c, "pc")

	_, err := c.PutProvisionedConcurrencyConfig(ctx, &lambda.PutProvisionedConcurrencyConfigInput{
		FunctionName: aws.String("pc"), Qualifier: aws.String("$LATEST"), ProvisionedConcurrentExecutions: aws.Int32(1)})
	apiErr(t, err, "InvalidParameterValueException", 400)
	_, err = c.GetProvisionedConcurrencyConfig(ctx, &lambda.GetProvisionedConcurrencyConfigInput{
		FunctionName: aws.String("pc"), Qualifier: aws.String("1")})
	apiErr(t, err, "ProvisionedConcurrencyConfigNotFoundException", 404)

	put, err := c.PutProvisionedConcurrencyConfig(ctx, &lambda.PutProvisionedConcurrencyConfigInput{
		FunctionName: aws.String("pc"), Qualifier: aws.String("1"), ProvisionedConcurrentExecutions: aws.Int32(2)})
	if err != nil {
		t.Fatal(err)
	}
	if *put.RequestedProvisionedConcurrentExecutions != 2 || put.LastModified == nil ||
		(put.Status != types.ProvisionedConcurrencyStatusEnumInProgress && put.Status != types.ProvisionedConcurrencyStatusEnumReady) {
		t.Fatalf("put answered %+v", put)
	}

	// It counts against the function's reservation.
	_, err = c.PutFunctionConcurrency(ctx, &lambda.PutFunctionConcurrencyInput{
		FunctionName: aws.String("pc"), ReservedConcurrentExecutions: aws.Int32(1)})
	apiErr(t, err, "InvalidParameterValueException", 400)

	deadline := time.Now().Add(60 * time.Second)
	for {
		g, err := c.GetProvisionedConcurrencyConfig(ctx, &lambda.GetProvisionedConcurrencyConfigInput{
			FunctionName: aws.String("pc"), Qualifier: aws.String("1")})
		if err != nil {
			t.Fatal(err)
		}
		if g.Status == types.ProvisionedConcurrencyStatusEnumReady {
			if *g.AllocatedProvisionedConcurrentExecutions != 2 || *g.AvailableProvisionedConcurrentExecutions != 2 {
				t.Fatalf("READY with %+v", g)
			}
			break
		}
		if g.Status != types.ProvisionedConcurrencyStatusEnumInProgress {
			t.Fatalf("status %s (%v)", g.Status, aws.ToString(g.StatusReason))
		}
		if time.Now().After(deadline) {
			t.Fatalf("not READY in time: %+v", g)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if n := dp.worker.Sandboxes(); n != 2 {
		t.Fatalf("%d sandboxes before the first invoke, want 2", n)
	}
	l, err := c.ListProvisionedConcurrencyConfigs(ctx, &lambda.ListProvisionedConcurrencyConfigsInput{FunctionName: aws.String("pc")})
	if err != nil || len(l.ProvisionedConcurrencyConfigs) != 1 ||
		!strings.HasSuffix(aws.ToString(l.ProvisionedConcurrencyConfigs[0].FunctionArn), ":function:pc:1") {
		t.Fatalf("list: %+v %v", l, err)
	}

	// The first invoke of the version is warm, in a provisioned sandbox.
	out, body := invokeJSON(t, c, "pc:1", map[string]any{"mode": "env"}, true)
	if out.FunctionError != nil || aws.ToString(out.ExecutedVersion) != "1" {
		t.Fatalf("invoke: %v %v %s", out.FunctionError, out.ExecutedVersion, out.Payload)
	}
	if log := logOf(t, out); strings.Contains(log, "Init Duration") || !strings.Contains(log, "REPORT RequestId") {
		t.Fatalf("the first invoke of a provisioned version was cold:\n%s", log)
	}
	if got := envOf(body, "AWS_LAMBDA_INITIALIZATION_TYPE"); got != "provisioned-concurrency" {
		t.Fatalf("AWS_LAMBDA_INITIALIZATION_TYPE %q", got)
	}
	if n := dp.worker.Sandboxes(); n != 2 {
		t.Fatalf("%d sandboxes after a warm invoke, want 2", n)
	}
	// $LATEST still starts on demand.
	_, lb := invokeJSON(t, c, "pc", map[string]any{"mode": "env"}, false)
	if got := envOf(lb, "AWS_LAMBDA_INITIALIZATION_TYPE"); got != "on-demand" {
		t.Fatalf("$LATEST AWS_LAMBDA_INITIALIZATION_TYPE %q", got)
	}

	// Deleting the configuration removes the provisioned sandboxes (the
	// $LATEST one stays under its keep-alive).
	if _, err := c.DeleteProvisionedConcurrencyConfig(ctx, &lambda.DeleteProvisionedConcurrencyConfigInput{
		FunctionName: aws.String("pc"), Qualifier: aws.String("1")}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "provisioned sandboxes to go", func() bool { return dp.worker.Sandboxes() == 1 })
	_, err = c.GetProvisionedConcurrencyConfig(ctx, &lambda.GetProvisionedConcurrencyConfigInput{
		FunctionName: aws.String("pc"), Qualifier: aws.String("1")})
	apiErr(t, err, "ProvisionedConcurrencyConfigNotFoundException", 404)
}

// TestProvisionedConcurrencyPerVersion: a version's provisioned
// concurrency is its own. When it fills the function's reservation,
// $LATEST is throttled (as Lambda documents) while the version runs;
// without the configuration $LATEST runs again.
func TestProvisionedConcurrencyPerVersion(t *testing.T) {
	_, c, _ := startInvokeEmber(t)
	ctx := context.Background()
	createProbe(t, c, "pv", nil)
	publish(t, c, "pv")
	if _, err := c.PutFunctionConcurrency(ctx, &lambda.PutFunctionConcurrencyInput{
		FunctionName: aws.String("pv"), ReservedConcurrentExecutions: aws.Int32(1)}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.PutProvisionedConcurrencyConfig(ctx, &lambda.PutProvisionedConcurrencyConfigInput{
		FunctionName: aws.String("pv"), Qualifier: aws.String("1"), ProvisionedConcurrentExecutions: aws.Int32(1)}); err != nil {
		t.Fatal(err)
	}
	_, err := c.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("pv"), Payload: []byte(`{}`)})
	var tm *types.TooManyRequestsException
	if !errors.As(err, &tm) || tm.Reason != types.ThrottleReasonReservedFunctionConcurrentInvocationLimitExceeded {
		t.Fatalf("$LATEST of a function whose provisioned concurrency fills its reservation: %v", err)
	}
	if out, _ := invokeJSON(t, c, "pv:1", map[string]any{}, false); aws.ToString(out.ExecutedVersion) != "1" {
		t.Fatalf("version 1 ran as %q", aws.ToString(out.ExecutedVersion))
	}
	if _, err := c.DeleteProvisionedConcurrencyConfig(ctx, &lambda.DeleteProvisionedConcurrencyConfigInput{
		FunctionName: aws.String("pv"), Qualifier: aws.String("1")}); err != nil {
		t.Fatal(err)
	}
	if out, _ := invokeJSON(t, c, "pv", map[string]any{}, false); aws.ToString(out.ExecutedVersion) != "$LATEST" {
		t.Fatalf("$LATEST ran as %q after the configuration's delete", aws.ToString(out.ExecutedVersion))
	}
}

// TestProvisionedConcurrencyAliasAndDelete: a configuration on an alias
// provisions the alias's version; deleting the function removes its
// sandboxes and its configuration.
func TestProvisionedConcurrencyAliasAndDelete(t *testing.T) {
	_, c, dp := startInvokeEmber(t)
	ctx := context.Background()
	createProbe(t, c, "pa", nil)
	publish(t, c, "pa")
	if _, err := c.CreateAlias(ctx, &lambda.CreateAliasInput{FunctionName: aws.String("pa"), Name: aws.String("live"),
		FunctionVersion: aws.String("1")}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.PutProvisionedConcurrencyConfig(ctx, &lambda.PutProvisionedConcurrencyConfigInput{
		FunctionName: aws.String("pa"), Qualifier: aws.String("live"), ProvisionedConcurrentExecutions: aws.Int32(1)}); err != nil {
		t.Fatal(err)
	}
	// The version behind the alias cannot have its own as well.
	_, err := c.PutProvisionedConcurrencyConfig(ctx, &lambda.PutProvisionedConcurrencyConfigInput{
		FunctionName: aws.String("pa"), Qualifier: aws.String("1"), ProvisionedConcurrentExecutions: aws.Int32(1)})
	apiErr(t, err, "ResourceConflictException", 409)
	waitFor(t, "READY", func() bool {
		g, err := c.GetProvisionedConcurrencyConfig(ctx, &lambda.GetProvisionedConcurrencyConfigInput{
			FunctionName: aws.String("pa"), Qualifier: aws.String("live")})
		return err == nil && g.Status == types.ProvisionedConcurrencyStatusEnumReady
	})
	if n := dp.worker.Sandboxes(); n != 1 {
		t.Fatalf("%d sandboxes, want 1", n)
	}
	out, body := invokeJSON(t, c, "pa:live", map[string]any{"mode": "env"}, true)
	if strings.Contains(logOf(t, out), "Init Duration") || envOf(body, "AWS_LAMBDA_INITIALIZATION_TYPE") != "provisioned-concurrency" {
		t.Fatalf("alias invoke not provisioned:\n%s", logOf(t, out))
	}
	// An alias with provisioned concurrency takes no weights, and does not
	// move onto a version provisioned through another qualifier (which
	// would provision that version twice).
	setEnv(t, c, "pa", "2")
	publish(t, c, "pa")
	_, err = c.UpdateAlias(ctx, &lambda.UpdateAliasInput{FunctionName: aws.String("pa"), Name: aws.String("live"),
		RoutingConfig: &types.AliasRoutingConfiguration{AdditionalVersionWeights: map[string]float64{"2": 0.5}}})
	apiErr(t, err, "InvalidParameterValueException", 400)
	if _, err := c.PutProvisionedConcurrencyConfig(ctx, &lambda.PutProvisionedConcurrencyConfigInput{
		FunctionName: aws.String("pa"), Qualifier: aws.String("2"), ProvisionedConcurrentExecutions: aws.Int32(1)}); err != nil {
		t.Fatal(err)
	}
	_, err = c.UpdateAlias(ctx, &lambda.UpdateAliasInput{FunctionName: aws.String("pa"), Name: aws.String("live"),
		FunctionVersion: aws.String("2")})
	apiErr(t, err, "ResourceConflictException", 409)
	if a, err := c.GetAlias(ctx, &lambda.GetAliasInput{FunctionName: aws.String("pa"), Name: aws.String("live")}); err != nil ||
		aws.ToString(a.FunctionVersion) != "1" || (a.RoutingConfig != nil && len(a.RoutingConfig.AdditionalVersionWeights) > 0) {
		t.Fatalf("the alias after refused updates: %+v %v", a, err)
	}
	if _, err := c.DeleteFunction(ctx, &lambda.DeleteFunctionInput{FunctionName: aws.String("pa")}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "sandboxes of the deleted function to go", func() bool { return dp.worker.Sandboxes() == 0 })
	// Nothing comes back in the next rounds of the manager's upkeep.
	r0 := dp.manager.Rounds()
	waitFor(t, "three rounds of upkeep", func() bool { return dp.manager.Rounds() >= r0+3 })
	if n := dp.worker.Sandboxes(); n != 0 {
		t.Fatalf("%d sandboxes after the function was deleted", n)
	}
}

// TestProvisionedConcurrencySurvivesRestart: the configuration is durable,
// and a restarted Ember provisions the sandboxes again before any invoke.
func TestProvisionedConcurrencySurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	dp := &dataPlane{}
	onDP := func(cfg *serveConfig) {
		cfg.onDataPlane = func(m *workermanager.Manager, w *worker.Worker) { dp.manager, dp.worker = m, w }
	}
	srv := startEmber(t, dir, onDP)
	c := srv.client(srv.creds("default"))
	ctx := context.Background()
	createProbe(t, c, "pr", nil)
	publish(t, c, "pr")
	if _, err := c.PutProvisionedConcurrencyConfig(ctx, &lambda.PutProvisionedConcurrencyConfigInput{
		FunctionName: aws.String("pr"), Qualifier: aws.String("1"), ProvisionedConcurrentExecutions: aws.Int32(1)}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a provisioned sandbox", func() bool { return dp.worker.Sandboxes() == 1 })
	srv.stop()

	srv = startEmber(t, dir, onDP)
	c = srv.client(srv.creds("default"))
	waitFor(t, "READY after a restart", func() bool {
		g, err := c.GetProvisionedConcurrencyConfig(ctx, &lambda.GetProvisionedConcurrencyConfigInput{
			FunctionName: aws.String("pr"), Qualifier: aws.String("1")})
		return err == nil && g.Status == types.ProvisionedConcurrencyStatusEnumReady
	})
	if n := dp.worker.Sandboxes(); n != 1 {
		t.Fatalf("%d sandboxes after a restart, want 1", n)
	}
}

// TestProvisionedConcurrencyInProgress: while the provisioned sandboxes'
// inits run (2 s here), the configuration is IN_PROGRESS with none
// allocated; it turns READY once they are done, not before.
func TestProvisionedConcurrencyInProgress(t *testing.T) {
	_, c, dp := startInvokeEmber(t)
	ctx := context.Background()
	const initDelay = 2 * time.Second
	createProbe(t, c, "slowinit", func(in *lambda.CreateFunctionInput) {
		in.Environment = &types.Environment{Variables: map[string]string{
			"INIT_MODE": "slow", "INIT_DELAY_MS": strconv.Itoa(int(initDelay / time.Millisecond))}}
	})
	publish(t, c, "slowinit")
	start := time.Now()
	put, err := c.PutProvisionedConcurrencyConfig(ctx, &lambda.PutProvisionedConcurrencyConfigInput{
		FunctionName: aws.String("slowinit"), Qualifier: aws.String("1"), ProvisionedConcurrentExecutions: aws.Int32(2)})
	if err != nil {
		t.Fatal(err)
	}
	if put.Status != types.ProvisionedConcurrencyStatusEnumInProgress || aws.ToInt32(put.AllocatedProvisionedConcurrentExecutions) != 0 {
		t.Fatalf("put answered %s with %d allocated during a %v init", put.Status, aws.ToInt32(put.AllocatedProvisionedConcurrentExecutions), initDelay)
	}
	get := func() *lambda.GetProvisionedConcurrencyConfigOutput {
		g, err := c.GetProvisionedConcurrencyConfig(ctx, &lambda.GetProvisionedConcurrencyConfigInput{
			FunctionName: aws.String("slowinit"), Qualifier: aws.String("1")})
		if err != nil {
			t.Fatal(err)
		}
		return g
	}
	if g := get(); g.Status != types.ProvisionedConcurrencyStatusEnumInProgress {
		t.Fatalf("get during the init: %s", g.Status)
	}
	var ready *lambda.GetProvisionedConcurrencyConfigOutput
	pollUntil(t, "READY", 60*time.Second, 20*time.Millisecond, func() bool {
		g := get()
		switch g.Status {
		case types.ProvisionedConcurrencyStatusEnumReady:
			ready = g
			return true
		case types.ProvisionedConcurrencyStatusEnumInProgress:
			if n := aws.ToInt32(g.AllocatedProvisionedConcurrentExecutions); n >= 2 {
				t.Fatalf("IN_PROGRESS with %d of 2 allocated", n)
			}
			return false
		}
		t.Fatalf("status %s (%s)", g.Status, aws.ToString(g.StatusReason))
		return false
	})
	if took := time.Since(start); took < initDelay {
		t.Fatalf("READY after %v, before the %v init could be done", took, initDelay)
	}
	if aws.ToInt32(ready.AllocatedProvisionedConcurrentExecutions) != 2 || dp.worker.Sandboxes() != 2 {
		t.Fatalf("READY with %d allocated, %d sandboxes", aws.ToInt32(ready.AllocatedProvisionedConcurrentExecutions), dp.worker.Sandboxes())
	}
	out, _ := invokeJSON(t, c, "slowinit:1", map[string]any{"mode": "env"}, true)
	if strings.Contains(logOf(t, out), "Init Duration") {
		t.Fatal("the first invoke after READY was cold")
	}
}
