package main

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"
)

// burst fires n overlapping slow invokes (spread over fns) and counts
// successes and 429s by Reason.
func burst(t *testing.T, c *lambda.Client, fns []string, n int) (ok int, reasons map[string]int) {
	t.Helper()
	var wg sync.WaitGroup
	var mu sync.Mutex
	reasons = map[string]int{}
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := c.Invoke(context.Background(), &lambda.InvokeInput{
				FunctionName: aws.String(fns[i%len(fns)]), Payload: []byte(`{"mode":"sleep","n":1500}`)})
			mu.Lock()
			defer mu.Unlock()
			var tm *types.TooManyRequestsException
			switch {
			case err == nil:
				ok++
			case errors.As(err, &tm):
				reasons[string(tm.Reason)]++
				if aws.ToString(tm.RetryAfterSeconds) == "" {
					t.Errorf("429 without retryAfterSeconds")
				}
			default:
				t.Errorf("invoke: %v", err)
			}
		}()
	}
	wg.Wait()
	return ok, reasons
}

func TestReservedConcurrency(t *testing.T) {
	ctx := context.Background()
	_, c, _ := startInvokeEmber(t)
	createProbe(t, c, "capped", nil)
	createProbe(t, c, "free", nil)
	if _, err := c.PutFunctionConcurrency(ctx, &lambda.PutFunctionConcurrencyInput{
		FunctionName: aws.String("capped"), ReservedConcurrentExecutions: aws.Int32(2)}); err != nil {
		t.Fatal(err)
	}
	gc, err := c.GetFunctionConcurrency(ctx, &lambda.GetFunctionConcurrencyInput{FunctionName: aws.String("capped")})
	if err != nil || aws.ToInt32(gc.ReservedConcurrentExecutions) != 2 {
		t.Fatalf("GetFunctionConcurrency: %v %v", gc, err)
	}
	gf, err := c.GetFunction(ctx, &lambda.GetFunctionInput{FunctionName: aws.String("capped")})
	if err != nil || gf.Concurrency == nil || aws.ToInt32(gf.Concurrency.ReservedConcurrentExecutions) != 2 {
		t.Fatalf("GetFunction.Concurrency: %+v %v", gf.Concurrency, err)
	}
	settings, err := c.GetAccountSettings(ctx, &lambda.GetAccountSettingsInput{})
	if err != nil || settings.AccountLimit.ConcurrentExecutions != 1000 ||
		aws.ToInt32(settings.AccountLimit.UnreservedConcurrentExecutions) != 998 || settings.AccountUsage.FunctionCount != 2 {
		t.Fatalf("account settings: %+v %+v %v", settings.AccountLimit, settings.AccountUsage, err)
	}

	ok, reasons := burst(t, c, []string{"capped"}, 10)
	if ok != 2 || reasons["ReservedFunctionConcurrentInvocationLimitExceeded"] != 8 {
		t.Fatalf("reserved 2, 10 at once: %d ok, %v", ok, reasons)
	}
	// Reserved 0 throttles every invoke; deleting the reservation lifts it.
	if _, err := c.PutFunctionConcurrency(ctx, &lambda.PutFunctionConcurrencyInput{
		FunctionName: aws.String("capped"), ReservedConcurrentExecutions: aws.Int32(0)}); err != nil {
		t.Fatal(err)
	}
	_, err = c.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("capped")})
	var tm *types.TooManyRequestsException
	if !errors.As(err, &tm) || tm.Reason != types.ThrottleReasonReservedFunctionConcurrentInvocationLimitExceeded {
		t.Fatalf("reserved 0: %v", err)
	}
	if _, err := c.DeleteFunctionConcurrency(ctx, &lambda.DeleteFunctionConcurrencyInput{FunctionName: aws.String("capped")}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("capped")}); err != nil {
		t.Fatalf("after deleting the reservation: %v", err)
	}
	// The account keeps at least 100 unreserved.
	_, err = c.PutFunctionConcurrency(ctx, &lambda.PutFunctionConcurrencyInput{
		FunctionName: aws.String("free"), ReservedConcurrentExecutions: aws.Int32(901)})
	apiErr(t, err, "InvalidParameterValueException", 400)
	if _, err := c.PutFunctionConcurrency(ctx, &lambda.PutFunctionConcurrencyInput{
		FunctionName: aws.String("free"), ReservedConcurrentExecutions: aws.Int32(900)}); err != nil {
		t.Fatalf("900 of 1000 leaves 100: %v", err)
	}
	// A reservation is neither code nor configuration: RevisionId stays.
	g2, _ := c.GetFunctionConfiguration(ctx, &lambda.GetFunctionConfigurationInput{FunctionName: aws.String("free")})
	g1, _ := c.GetFunction(ctx, &lambda.GetFunctionInput{FunctionName: aws.String("free")})
	if *g1.Configuration.RevisionId != *g2.RevisionId {
		t.Fatal("inconsistent revisions")
	}
	// Provisioned concurrency needs a published version, which Ember does
	// not have yet: refused as Lambda refuses $LATEST.
	_, err = c.PutProvisionedConcurrencyConfig(ctx, &lambda.PutProvisionedConcurrencyConfigInput{
		FunctionName: aws.String("free"), Qualifier: aws.String("$LATEST"), ProvisionedConcurrentExecutions: aws.Int32(1)})
	apiErr(t, err, "InvalidParameterValueException", 400)
}

func TestAccountLimitAcrossFunctions(t *testing.T) {
	_, c, _ := startInvokeEmber(t, func(cfg *serveConfig) { cfg.AccountConcurrency = 3 })
	createProbe(t, c, "f1", nil)
	createProbe(t, c, "f2", nil)
	ok, reasons := burst(t, c, []string{"f1", "f2"}, 10)
	if ok != 3 || reasons["ConcurrentInvocationLimitExceeded"] != 7 {
		t.Fatalf("account limit 3, 10 at once over two functions: %d ok, %v", ok, reasons)
	}
	s, err := c.GetAccountSettings(context.Background(), &lambda.GetAccountSettingsInput{})
	if err != nil || s.AccountLimit.ConcurrentExecutions != 3 {
		t.Fatalf("settings %+v %v", s, err)
	}
}

func TestScalingRate(t *testing.T) {
	_, c, dp := startInvokeEmber(t, func(cfg *serveConfig) { cfg.ScaleBurst = 2 })
	createProbe(t, c, "scaly", nil)
	ok, reasons := burst(t, c, []string{"scaly"}, 6)
	if ok != 2 || reasons["FunctionInvocationRateLimitExceeded"] != 4 {
		t.Fatalf("scaling burst 2, 6 cold at once: %d ok, %v", ok, reasons)
	}
	if n := dp.worker.Sandboxes(); n != 2 {
		t.Fatalf("%d sandboxes made, want 2", n)
	}
	// Warm sandboxes need no new ones: the same two serve on.
	ok, reasons = burst(t, c, []string{"scaly"}, 2)
	if ok != 2 || len(reasons) != 0 {
		t.Fatalf("warm: %d ok, %v", ok, reasons)
	}
}
