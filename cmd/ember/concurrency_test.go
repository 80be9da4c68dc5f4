package main

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"

	"github.com/emberfn/ember/internal/counting"
	"github.com/emberfn/ember/internal/workermanager"
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
	// Provisioned concurrency is for published versions and aliases:
	// $LATEST is refused, as Lambda refuses it.
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

// slowInput sets a probe's timeout to 15 s, for slow invokes.
func slowInput(in *lambda.CreateFunctionInput) { in.Timeout = aws.Int32(15) }

// invokeAsync starts an invoke and sends its error (nil: success) on the
// returned channel.
func invokeAsync(c *lambda.Client, name, payload string) <-chan error {
	ch := make(chan error, 1)
	go func() {
		_, err := c.Invoke(context.Background(), &lambda.InvokeInput{FunctionName: aws.String(name), Payload: []byte(payload)})
		ch <- err
	}()
	return ch
}

// throttleReason is the Reason of a 429, "" for any other outcome (and
// "none" for a 429 without one).
func throttleReason(err error) string {
	var tm *types.TooManyRequestsException
	if !errors.As(err, &tm) {
		return ""
	}
	if tm.Reason == "" {
		return "none"
	}
	return string(tm.Reason)
}

// accountOf is the id of the account a client's function belongs to.
func accountOf(t *testing.T, c *lambda.Client, fn string) string {
	t.Helper()
	g, err := c.GetFunction(context.Background(), &lambda.GetFunctionInput{FunctionName: aws.String(fn)})
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(aws.ToString(g.Configuration.FunctionArn), ":")
	if len(parts) < 5 {
		t.Fatalf("function ARN %s", aws.ToString(g.Configuration.FunctionArn))
	}
	return parts[4]
}

// TestProvisionedCarvedOut: provisioned concurrency of a function without
// a reservation is taken out of the account's unreserved pool: other
// functions that use the pool up cannot take it, and the provisioned
// function's invokes still run (past its provisioned concurrency they
// share the pool).
func TestProvisionedCarvedOut(t *testing.T) {
	ctx := context.Background()
	_, c, _ := startInvokeEmber(t, func(cfg *serveConfig) { cfg.AccountConcurrency = 4; cfg.minUnreserved = 1 })
	createProbe(t, c, "pc", slowInput)
	createProbe(t, c, "other", slowInput)
	publish(t, c, "pc")
	// 4 - 3 leaves 1 unreserved: allowed; 4 would leave none.
	_, err := c.PutProvisionedConcurrencyConfig(ctx, &lambda.PutProvisionedConcurrencyConfigInput{
		FunctionName: aws.String("pc"), Qualifier: aws.String("1"), ProvisionedConcurrentExecutions: aws.Int32(4)})
	apiErr(t, err, "InvalidParameterValueException", 400)
	if _, err := c.PutProvisionedConcurrencyConfig(ctx, &lambda.PutProvisionedConcurrencyConfigInput{
		FunctionName: aws.String("pc"), Qualifier: aws.String("1"), ProvisionedConcurrentExecutions: aws.Int32(2)}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "READY", func() bool {
		g, err := c.GetProvisionedConcurrencyConfig(ctx, &lambda.GetProvisionedConcurrencyConfigInput{
			FunctionName: aws.String("pc"), Qualifier: aws.String("1")})
		return err == nil && g.Status == types.ProvisionedConcurrencyStatusEnumReady
	})
	s, err := c.GetAccountSettings(ctx, &lambda.GetAccountSettingsInput{})
	if err != nil || s.AccountLimit.ConcurrentExecutions != 4 || aws.ToInt32(s.AccountLimit.UnreservedConcurrentExecutions) != 2 {
		t.Fatalf("settings %+v %v", s.AccountLimit, err)
	}

	// Six slow invokes of another function: the pool (2) runs two, four
	// are throttled at once.
	var others []<-chan error
	for range 6 {
		others = append(others, invokeAsync(c, "other", `{"mode":"sleep","n":5000}`))
	}
	done := make([]bool, len(others))
	throttled, finished := 0, 0
	pollUntil(t, "the other function's throttles", 60*time.Second, 5*time.Millisecond, func() bool {
		for i, ch := range others {
			if done[i] {
				continue
			}
			select {
			case err := <-ch:
				done[i] = true
				finished++
				switch r := throttleReason(err); {
				case r == "ConcurrentInvocationLimitExceeded":
					throttled++
				case err != nil:
					t.Fatalf("other: %v", err)
				}
			default:
			}
		}
		return throttled == 4 || finished == len(others)
	})
	if throttled != 4 || finished != 4 {
		t.Fatalf("other function with a pool of 2: %d throttled of %d finished, want 4 of 4 with 2 still running", throttled, finished)
	}
	// The pool is used up; the provisioned function still runs 2, and a
	// third, past its provisioned concurrency, finds the pool full.
	var pcs []<-chan error
	for range 3 {
		pcs = append(pcs, invokeAsync(c, "pc:1", `{"mode":"sleep","n":300}`))
	}
	ok, reasons := 0, map[string]int{}
	for _, ch := range pcs {
		err := <-ch
		if err == nil {
			ok++
		} else if r := throttleReason(err); r != "" {
			reasons[r]++
		} else {
			t.Fatalf("pc:1: %v", err)
		}
	}
	if ok != 2 || reasons["ConcurrentInvocationLimitExceeded"] != 1 {
		t.Fatalf("provisioned 2 with the pool used up, 3 at once: %d ok, %v", ok, reasons)
	}
	for i, ch := range others {
		if !done[i] {
			if err := <-ch; err != nil {
				t.Fatalf("other: %v", err)
			}
		}
	}
	// With the pool free again, past its provisioned concurrency the
	// function shares it.
	ok, reasons = burst(t, c, []string{"pc:1"}, 4)
	if ok != 4 || len(reasons) != 0 {
		t.Fatalf("provisioned 2 and a free pool of 2, 4 at once: %d ok, %v", ok, reasons)
	}
}

// TestNoCapacity: with the worker's memory held by a busy sandbox, an
// invoke that needs a new one is answered at once with a 429
// TooManyRequestsException (no Reason, a retryAfterSeconds), never left
// hanging; once the busy sandbox is idle it is reclaimed for the next.
func TestNoCapacity(t *testing.T) {
	_, c, dp := startInvokeEmber(t, func(cfg *serveConfig) { cfg.WorkerMemoryMB = 128 })
	createProbe(t, c, "hold", slowInput)
	createProbe(t, c, "other", nil)
	held := invokeAsync(c, "hold", `{"mode":"sleep","n":4000}`)
	waitFor(t, "the busy sandbox", func() bool { return dp.manager.Counts()[workermanager.Busy] == 1 })
	start := time.Now()
	_, err := c.Invoke(context.Background(), &lambda.InvokeInput{FunctionName: aws.String("other")})
	took := time.Since(start)
	var tm *types.TooManyRequestsException
	if !errors.As(err, &tm) || tm.Reason != "" || aws.ToString(tm.RetryAfterSeconds) == "" {
		t.Fatalf("no capacity answered %v", err)
	}
	if took > 3*time.Second {
		t.Fatalf("no capacity took %v to answer", took)
	}
	select {
	case err := <-held:
		t.Fatalf("the busy invoke ended early: %v", err)
	default:
	}
	if err := <-held; err != nil {
		t.Fatal(err)
	}
	out, _ := invokeJSON(t, c, "other", map[string]any{}, true)
	if !strings.Contains(logOf(t, out), "Init Duration") {
		t.Fatal("the invoke after the reclaim was not a cold start")
	}
	if n := dp.worker.Sandboxes(); n != 1 {
		t.Fatalf("%d sandboxes on a worker with room for one", n)
	}
}

// newAccountID makes an account through Ember's admin API and returns
// its id and keys.
func newAccountID(t *testing.T, srv *emberServer, name string) (string, aws.Credentials) {
	t.Helper()
	resp := adminCall(t, srv, srv.creds("default"), "POST", "/ember/v1/accounts", `{"Name":"`+name+`"}`)
	defer resp.Body.Close()
	var acct struct{ AccountId, AccessKeyId, SecretAccessKey string }
	if err := json.NewDecoder(resp.Body).Decode(&acct); err != nil || resp.StatusCode != 201 || acct.AccountId == "" {
		t.Fatalf("create account: %d %v", resp.StatusCode, err)
	}
	return acct.AccountId, aws.Credentials{AccessKeyID: acct.AccessKeyId, SecretAccessKey: acct.SecretAccessKey}
}

// adminCall sends a request to Ember's admin API (SigV4 service "ember").
func adminCall(t *testing.T, srv *emberServer, creds aws.Credentials, method, path, body string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(method, srv.url+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	sum := sha256.Sum256([]byte(body))
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, req, hex.EncodeToString(sum[:]), "ember", "us-east-1", time.Now()); err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// TestAccountConcurrencyLimit: an administrator sets one account's
// concurrency limit; it is refused below the account's reservations plus
// the minimum unreserved; GetAccountSettings and the 429s of that account
// follow it, while another account keeps the default.
func TestAccountConcurrencyLimit(t *testing.T) {
	ctx := context.Background()
	var counter *counting.Service
	srv, c, _ := startInvokeEmber(t, func(cfg *serveConfig) {
		cfg.minUnreserved = 1
		cfg.onCounting = func(s *counting.Service) { counter = s }
	})
	id, creds := newAccountID(t, srv, "limited")
	bc := srv.client(creds)
	createProbe(t, bc, "b1", nil)
	createProbe(t, bc, "b2", nil)
	createProbe(t, c, "d1", nil)
	if _, err := bc.PutFunctionConcurrency(ctx, &lambda.PutFunctionConcurrencyInput{
		FunctionName: aws.String("b2"), ReservedConcurrentExecutions: aws.Int32(1)}); err != nil {
		t.Fatal(err)
	}
	setLimit := func(creds aws.Credentials, account string, limit int) (int, string) {
		resp := adminCall(t, srv, creds, "PUT", "/ember/v1/accounts/"+account+"/concurrency-limit", fmt.Sprintf(`{"Limit":%d}`, limit))
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	admin := srv.creds("default")
	// The reservation (1) and the minimum unreserved (1 here) need 2.
	if code, body := setLimit(admin, id, 1); code != 400 || !strings.Contains(body, "at least 2") {
		t.Fatalf("limit 1 below the reservation plus the minimum: %d %s", code, body)
	}
	if code, body := setLimit(admin, "999999999999", 5); code != 404 {
		t.Fatalf("unknown account: %d %s", code, body)
	}
	if code, body := setLimit(admin, id, 3); code != 200 {
		t.Fatalf("limit 3: %d %s", code, body)
	}
	s, err := bc.GetAccountSettings(ctx, &lambda.GetAccountSettingsInput{})
	if err != nil || s.AccountLimit.ConcurrentExecutions != 3 || aws.ToInt32(s.AccountLimit.UnreservedConcurrentExecutions) != 2 {
		t.Fatalf("limited account's settings %+v %v", s.AccountLimit, err)
	}
	// Now the reservation cannot grow past what the limit leaves.
	_, err = bc.PutFunctionConcurrency(ctx, &lambda.PutFunctionConcurrencyInput{
		FunctionName: aws.String("b2"), ReservedConcurrentExecutions: aws.Int32(3)})
	apiErr(t, err, "InvalidParameterValueException", 400)
	// The Counting Service learns the limit from the account watch.
	pollUntil(t, "the counting service to learn the limit", 10*time.Second, 5*time.Millisecond, func() bool {
		return counter.AccountUsage(id).Limit == 3
	})
	ok, reasons := burst(t, bc, []string{"b1"}, 6)
	if ok != 2 || reasons["ConcurrentInvocationLimitExceeded"] != 4 {
		t.Fatalf("limit 3 with 1 reserved, 6 at once: %d ok, %v", ok, reasons)
	}
	// The other account keeps the default.
	s, err = c.GetAccountSettings(ctx, &lambda.GetAccountSettingsInput{})
	if err != nil || s.AccountLimit.ConcurrentExecutions != 1000 || aws.ToInt32(s.AccountLimit.UnreservedConcurrentExecutions) != 1000 {
		t.Fatalf("default account's settings %+v %v", s.AccountLimit, err)
	}
	ok, reasons = burst(t, c, []string{"d1"}, 6)
	if ok != 6 || len(reasons) != 0 {
		t.Fatalf("default account, 6 at once: %d ok, %v", ok, reasons)
	}
	// Only an administrator may set it; 0 is the default again.
	if code, body := setLimit(creds, id, 10); code != 403 || !strings.Contains(body, "administrator") {
		t.Fatalf("a limit set by the account itself: %d %s", code, body)
	}
	if code, _ := setLimit(admin, id, 0); code != 200 {
		t.Fatalf("back to the default: %d", code)
	}
	s, err = bc.GetAccountSettings(ctx, &lambda.GetAccountSettingsInput{})
	if err != nil || s.AccountLimit.ConcurrentExecutions != 1000 {
		t.Fatalf("after the reset %+v %v", s.AccountLimit, err)
	}
}

// TestKilledCallerSlotComesBack: a real client in another process (this
// test binary re-executed as `ember invoke`) starts a slow invoke of a
// function with reserved concurrency 1 and is SIGKILLed mid-flight. The
// slot it held comes back by the function's timeout (3 s, the sleep asked
// for is 60 s), and the function can be invoked again.
func TestKilledCallerSlotComesBack(t *testing.T) {
	ctx := context.Background()
	var counter *counting.Service
	srv, c, dp := startInvokeEmber(t, func(cfg *serveConfig) { cfg.onCounting = func(s *counting.Service) { counter = s } })
	createProbe(t, c, "killme", func(in *lambda.CreateFunctionInput) { in.Timeout = aws.Int32(3) })
	if _, err := c.PutFunctionConcurrency(ctx, &lambda.PutFunctionConcurrencyInput{
		FunctionName: aws.String("killme"), ReservedConcurrentExecutions: aws.Int32(1)}); err != nil {
		t.Fatal(err)
	}
	acct := accountOf(t, c, "killme")

	cmd := exec.Command(os.Args[0], "invoke", "killme", `{"mode":"sleep","n":60000}`, "--endpoint", srv.url, "--data-dir", srv.dataDir)
	env := []string{"EMBER_TEST_AS_MAIN=1"}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "AWS_") && !strings.HasPrefix(kv, "EMBER_") {
			env = append(env, kv)
		}
	}
	cmd.Env = env
	var childOut syncBuffer
	cmd.Stdout, cmd.Stderr = &childOut, &childOut
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
	// The child's invoke holds the slot and runs in a sandbox.
	pollUntil(t, "the child's invoke to run", 60*time.Second, 10*time.Millisecond, func() bool {
		select {
		case err := <-exited:
			exited <- err // for the cleanup
			t.Fatalf("the caller exited before it was killed: %v\n%s", err, childOut.String())
		default:
		}
		return counter.FunctionInUse(acct, "killme") == 1 && dp.manager.Counts()[workermanager.Busy] == 1
	})
	_, err := c.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("killme")})
	if r := throttleReason(err); r != "ReservedFunctionConcurrentInvocationLimitExceeded" {
		t.Fatalf("with the child's invoke in flight: %v", err)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if err := <-exited; err == nil {
		t.Fatal("the killed caller exited cleanly")
	}
	exited <- nil // for the cleanup
	killed := time.Now()
	// Back no later than the 3 s timeout plus a margin for a loaded host.
	pollUntil(t, "the killed caller's slot to come back", 15*time.Second, 50*time.Millisecond, func() bool {
		_, err := c.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("killme")})
		if err == nil {
			return true
		}
		if r := throttleReason(err); r != "ReservedFunctionConcurrentInvocationLimitExceeded" {
			t.Fatalf("while the slot is held: %v", err)
		}
		return false
	})
	t.Logf("slot back %v after the caller was killed", time.Since(killed).Round(10*time.Millisecond))
	pollUntil(t, "no slot held", 5*time.Second, 10*time.Millisecond, func() bool { return counter.FunctionInUse(acct, "killme") == 0 })
}

// TestScaleZeroManyZero: from no sandbox, N concurrent invokes make N
// (each a cold start); after the keep-alive there are none again, and the
// next invoke is a cold start.
func TestScaleZeroManyZero(t *testing.T) {
	const keepAlive = 4 * time.Second
	_, c, dp := startInvokeEmber(t, func(cfg *serveConfig) { cfg.KeepAlive = keepAlive; cfg.KeepAlivePolicy = "fixed" })
	createProbe(t, c, "scale", nil)
	if n := dp.worker.Sandboxes(); n != 0 {
		t.Fatalf("%d sandboxes before any invoke", n)
	}
	const n = 5
	logs := make([]string, n)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, err := c.Invoke(context.Background(), &lambda.InvokeInput{FunctionName: aws.String("scale"),
				Payload: []byte(`{"mode":"sleep","n":1000}`), LogType: types.LogTypeTail})
			if err != nil {
				errs <- err
				return
			}
			b, _ := base64.StdEncoding.DecodeString(aws.ToString(out.LogResult))
			logs[i] = string(b)
		}()
	}
	wg.Wait()
	burstEnd := time.Now()
	close(errs)
	for err := range errs {
		t.Fatalf("invoke: %v", err)
	}
	if got := dp.worker.Sandboxes(); got != n {
		t.Fatalf("%d sandboxes after %d concurrent invokes", got, n)
	}
	for i, l := range logs {
		if !strings.Contains(l, "Init Duration") {
			t.Fatalf("invoke %d of %d concurrent ones from zero was warm:\n%s", i, n, l)
		}
	}
	pollUntil(t, "scale back to zero", 60*time.Second, 20*time.Millisecond, func() bool { return dp.worker.Sandboxes() == 0 })
	if idle := time.Since(burstEnd); idle < keepAlive/2 {
		t.Fatalf("back to zero %v after the burst, with a keep-alive of %v", idle, keepAlive)
	}
	if c := dp.manager.Counts(); c[workermanager.Idle]+c[workermanager.Busy]+c[workermanager.Starting] != 0 {
		t.Fatalf("manager still counts %v", c)
	}
	out, _ := invokeJSON(t, c, "scale", map[string]any{}, true)
	if !strings.Contains(logOf(t, out), "Init Duration") {
		t.Fatal("the invoke after scaling to zero was warm")
	}
	if got := dp.worker.Sandboxes(); got != 1 {
		t.Fatalf("%d sandboxes after one invoke from zero", got)
	}
}
