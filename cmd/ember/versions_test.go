package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"
	"github.com/aws/smithy-go"

	"github.com/emberfn/ember/internal/store"
	"github.com/emberfn/ember/internal/workermanager"
)

// workerKnowsVersions: the worker sets AWS_LAMBDA_FUNCTION_VERSION from
// the sandbox's version and passes the invoked (qualified) ARN to the
// runtime. Until it does, the tests tell versions apart by their own
// environment and by X-Amz-Executed-Version only.
const workerKnowsVersions = true

// envInvoke invokes name (which may be qualified) in mode env and returns
// the executed version and what the function saw.
func envInvoke(t *testing.T, c *lambda.Client, name string) (string, map[string]any) {
	t.Helper()
	out, body := invokeJSON(t, c, name, map[string]any{"mode": "env"}, false)
	if out.FunctionError != nil || out.ExecutedVersion == nil {
		t.Fatalf("invoke %s: %v %v %s", name, out.FunctionError, out.ExecutedVersion, out.Payload)
	}
	return *out.ExecutedVersion, body
}

func envOf(body map[string]any, k string) string {
	env, _ := body["env"].(map[string]any)
	s, _ := env[k].(string)
	return s
}

// checkVersionSeen checks what the runtime saw of the version it runs and
// the ARN it was invoked by.
func checkVersionSeen(t *testing.T, body map[string]any, version, arn string) {
	t.Helper()
	if !workerKnowsVersions {
		return
	}
	if got := envOf(body, "AWS_LAMBDA_FUNCTION_VERSION"); got != version {
		t.Errorf("AWS_LAMBDA_FUNCTION_VERSION %q, want %q", got, version)
	}
	if got := envOf(body, "AWS_LAMBDA_LOG_STREAM_NAME"); !strings.Contains(got, "/["+version+"]") {
		t.Errorf("log stream %q does not name version %s", got, version)
	}
	if body["function_arn"] != arn {
		t.Errorf("invoked ARN %v, want %s", body["function_arn"], arn)
	}
}

func setEnv(t *testing.T, c *lambda.Client, name, ver string) *lambda.UpdateFunctionConfigurationOutput {
	t.Helper()
	out, err := c.UpdateFunctionConfiguration(context.Background(), &lambda.UpdateFunctionConfigurationInput{
		FunctionName: aws.String(name), Environment: &types.Environment{Variables: map[string]string{"VER": ver}}})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func publish(t *testing.T, c *lambda.Client, name string) *lambda.PublishVersionOutput {
	t.Helper()
	out, err := c.PublishVersion(context.Background(), &lambda.PublishVersionInput{FunctionName: aws.String(name)})
	if err != nil {
		t.Fatalf("publish %s: %v", name, err)
	}
	return out
}

func apiMessage(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorMessage()
	}
	return ""
}

func TestPublishVersions(t *testing.T) {
	ctx := context.Background()
	srv, c, dp := startInvokeEmber(t)
	createProbe(t, c, "vp", func(in *lambda.CreateFunctionInput) {
		in.Environment = &types.Environment{Variables: map[string]string{"VER": "1"}}
		in.Description = aws.String("the probe")
	})
	before, err := c.GetFunctionConfiguration(ctx, &lambda.GetFunctionConfigurationInput{FunctionName: aws.String("vp")})
	if err != nil {
		t.Fatal(err)
	}
	arn := *before.FunctionArn

	// Version 1: a snapshot with its own number, ARN and RevisionId.
	v1, err := c.PublishVersion(ctx, &lambda.PublishVersionInput{FunctionName: aws.String("vp"),
		Description: aws.String("first"), CodeSha256: before.CodeSha256, RevisionId: before.RevisionId})
	if err != nil {
		t.Fatal(err)
	}
	if *v1.Version != "1" || *v1.FunctionArn != arn+":1" || *v1.Description != "first" || *v1.CodeSha256 != *before.CodeSha256 ||
		*v1.RevisionId == "" || *v1.RevisionId == *before.RevisionId || v1.Environment.Variables["VER"] != "1" ||
		v1.State != types.StateActive || *v1.FunctionName != "vp" {
		t.Fatalf("version 1: %+v", v1)
	}
	// Publishing gives $LATEST a new RevisionId (as Lambda).
	latest, _ := c.GetFunctionConfiguration(ctx, &lambda.GetFunctionConfigurationInput{FunctionName: aws.String("vp")})
	if *latest.RevisionId == *before.RevisionId || *latest.Version != "$LATEST" || *latest.Description != "the probe" {
		t.Fatalf("$LATEST after publish: %+v", latest)
	}
	// Nothing changed: no new version, the last one is the answer.
	again := publish(t, c, "vp")
	if *again.Version != "1" || *again.RevisionId != *v1.RevisionId {
		t.Fatalf("publish without a change made version %s", *again.Version)
	}
	// Preconditions.
	_, err = c.PublishVersion(ctx, &lambda.PublishVersionInput{FunctionName: aws.String("vp"), RevisionId: before.RevisionId})
	apiErr(t, err, "PreconditionFailedException", 412)
	_, err = c.PublishVersion(ctx, &lambda.PublishVersionInput{FunctionName: aws.String("vp"),
		CodeSha256: aws.String("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")})
	apiErr(t, err, "InvalidParameterValueException", 400)
	if !strings.Contains(apiMessage(err), "is different from current CodeSHA256 in $LATEST") {
		t.Fatalf("CodeSha256 mismatch message %q", apiMessage(err))
	}

	// Version 2 after a change of configuration; the answer is 201.
	u := setEnv(t, c, "vp", "2")
	body, _ := json.Marshal(map[string]string{"RevisionId": *u.RevisionId, "CodeSha256": *u.CodeSha256})
	resp := srv.signed(srv.creds("default"), "POST", "/2015-03-31/functions/vp/versions", body, time.Now(), nil)
	b, _ := io.ReadAll(resp.Body)
	var v2 struct{ Version, FunctionArn, Description string }
	if err := json.Unmarshal(b, &v2); err != nil || resp.StatusCode != http.StatusCreated || v2.Version != "2" ||
		v2.FunctionArn != arn+":2" || v2.Description != "the probe" {
		t.Fatalf("publish version 2: %d %s", resp.StatusCode, b)
	}
	// UpdateFunctionCode with Publish answers with the new version.
	v3, err := c.UpdateFunctionCode(ctx, &lambda.UpdateFunctionCodeInput{FunctionName: aws.String("vp"), ZipFile: probe(t), Publish: true})
	if err != nil || *v3.Version != "3" || *v3.FunctionArn != arn+":3" {
		t.Fatalf("UpdateFunctionCode with Publish: %+v %v", v3, err)
	}

	// ListVersionsByFunction: $LATEST, then by number, qualified ARNs,
	// in pages.
	var listed []string
	var marker *string
	for pages := 0; ; pages++ {
		l, err := c.ListVersionsByFunction(ctx, &lambda.ListVersionsByFunctionInput{FunctionName: aws.String("vp"), MaxItems: aws.Int32(2), Marker: marker})
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range l.Versions {
			listed = append(listed, *v.Version)
			if *v.FunctionArn != arn+":"+*v.Version {
				t.Fatalf("listed version %s has ARN %s", *v.Version, *v.FunctionArn)
			}
		}
		if marker = l.NextMarker; marker == nil {
			break
		}
		if pages > 5 {
			t.Fatal("paging does not end")
		}
	}
	if want := []string{"$LATEST", "1", "2", "3"}; !slices.Equal(listed, want) {
		t.Fatalf("listed %v, want %v", listed, want)
	}

	// Reading a version by Qualifier, by NAME:N and by ARN.
	g1, err := c.GetFunctionConfiguration(ctx, &lambda.GetFunctionConfigurationInput{FunctionName: aws.String("vp"), Qualifier: aws.String("1")})
	if err != nil || *g1.Version != "1" || g1.Environment.Variables["VER"] != "1" || *g1.Description != "first" || *g1.RevisionId != *v1.RevisionId {
		t.Fatalf("get version 1: %+v %v", g1, err)
	}
	g2, err := c.GetFunction(ctx, &lambda.GetFunctionInput{FunctionName: aws.String(arn + ":2")})
	if err != nil || *g2.Configuration.Version != "2" || g2.Configuration.Environment.Variables["VER"] != "2" || *g2.Configuration.FunctionArn != arn+":2" {
		t.Fatalf("get version 2: %+v %v", g2, err)
	}
	if r, err := http.Get(*g2.Code.Location); err != nil || r.StatusCode != 200 {
		t.Fatalf("version code download: %v %v", r, err)
	} else {
		r.Body.Close()
	}
	_, err = c.GetFunction(ctx, &lambda.GetFunctionInput{FunctionName: aws.String("vp:9")})
	apiErr(t, err, "ResourceNotFoundException", 404)
	if want := "Function not found: " + arn + ":9"; apiMessage(err) != want {
		t.Fatalf("message %q, want %q", apiMessage(err), want)
	}

	// Invoke each: the version that ran says so, and runs its own
	// configuration in its own sandbox.
	started := map[string]any{}
	for _, c2 := range []struct{ name, version, ver, arn string }{
		{"vp", "$LATEST", "2", arn}, {"vp:1", "1", "1", arn + ":1"}, {arn + ":2", "2", "2", arn + ":2"}, {"vp:3", "3", "2", arn + ":3"},
		{"vp:$LATEST", "$LATEST", "2", arn + ":$LATEST"},
	} {
		got, body := envInvoke(t, c, c2.name)
		if got != c2.version || envOf(body, "VER") != c2.ver {
			t.Fatalf("invoke %s: executed %s with VER=%s", c2.name, got, envOf(body, "VER"))
		}
		checkVersionSeen(t, body, c2.version, c2.arn)
		if s, ok := started[c2.version]; ok && s != body["started"] {
			t.Fatalf("version %s ran in two sandboxes", c2.version)
		}
		for v, s := range started {
			if v != c2.version && s == body["started"] {
				t.Fatalf("versions %s and %s share a sandbox", v, c2.version)
			}
		}
		started[c2.version] = body["started"]
	}
	out, err := c.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("vp"), Qualifier: aws.String("1"), Payload: []byte(`{"mode":"env"}`), LogType: types.LogTypeTail})
	if err != nil || *out.ExecutedVersion != "1" || !strings.Contains(logOf(t, out), " Version: 1\n") {
		t.Fatalf("invoke with Qualifier: %v %v", out, err)
	}
	// A change of $LATEST replaces $LATEST's sandbox only.
	setEnv(t, c, "vp", "4")
	waitFor(t, "$LATEST's old sandbox to go", func() bool { return dp.worker.Sandboxes() == 3 })
	if _, body := envInvoke(t, c, "vp:1"); body["started"] != started["1"] {
		t.Fatal("a change of $LATEST retired version 1's sandbox")
	}
	if _, body := envInvoke(t, c, "vp"); body["started"] == started["$LATEST"] || envOf(body, "VER") != "4" {
		t.Fatal("$LATEST kept its old sandbox")
	}
	for _, q := range []string{"9", "nope"} {
		_, err = c.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("vp"), Qualifier: aws.String(q)})
		apiErr(t, err, "ResourceNotFoundException", 404)
		if want := "Function not found: " + arn + ":" + q; apiMessage(err) != want {
			t.Fatalf("message %q, want %q", apiMessage(err), want)
		}
	}

	// Deleting one version: its sandbox goes, the others stay.
	if _, err := c.DeleteFunction(ctx, &lambda.DeleteFunctionInput{FunctionName: aws.String("vp"), Qualifier: aws.String("2")}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "version 2's sandbox to go", func() bool { return dp.worker.Sandboxes() == 3 })
	_, err = c.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("vp:2")})
	apiErr(t, err, "ResourceNotFoundException", 404)
	_, err = c.DeleteFunction(ctx, &lambda.DeleteFunctionInput{FunctionName: aws.String("vp"), Qualifier: aws.String("$LATEST")})
	apiErr(t, err, "InvalidParameterValueException", 400)
	// Deleting a version that does not exist is not an error (as Lambda).
	if _, err := c.DeleteFunction(ctx, &lambda.DeleteFunctionInput{FunctionName: aws.String("vp:2")}); err != nil {
		t.Fatalf("deleting a deleted version: %v", err)
	}
	// Numbers are not reused.
	setEnv(t, c, "vp", "5")
	if v := publish(t, c, "vp"); *v.Version != "4" {
		t.Fatalf("next version %s, want 4", *v.Version)
	}

	// CreateFunction with Publish answers with version 1.
	cf := createInput("pub", probe(t))
	cf.Publish = true
	created, err := c.CreateFunction(ctx, cf)
	if err != nil || *created.Version != "1" || !strings.HasSuffix(*created.FunctionArn, ":function:pub") {
		t.Fatalf("CreateFunction with Publish: %+v %v", created, err)
	}
	l, err := c.ListVersionsByFunction(ctx, &lambda.ListVersionsByFunctionInput{FunctionName: aws.String("pub")})
	if err != nil || len(l.Versions) != 2 || *l.Versions[1].Version != "1" {
		t.Fatalf("versions of pub: %+v %v", l, err)
	}
	if v := publish(t, c, "pub"); *v.Version != "1" {
		t.Fatalf("publishing an unchanged function made version %s", *v.Version)
	}
}

func TestAliases(t *testing.T) {
	ctx := context.Background()
	var st *store.Store
	srv, c, dp := startInvokeEmber(t, func(cfg *serveConfig) { cfg.onStore = func(s *store.Store) { st = s } })
	createProbe(t, c, "al", func(in *lambda.CreateFunctionInput) {
		in.Environment = &types.Environment{Variables: map[string]string{"VER": "1"}}
	})
	arn := lambdaARN(t, c, "al")
	account := strings.Split(arn, ":")[4]
	publish(t, c, "al")
	setEnv(t, c, "al", "2")
	publish(t, c, "al")
	setEnv(t, c, "al", "latest")

	live, err := c.CreateAlias(ctx, &lambda.CreateAliasInput{FunctionName: aws.String("al"), Name: aws.String("live"),
		FunctionVersion: aws.String("1"), Description: aws.String("production")})
	if err != nil || *live.AliasArn != arn+":live" || *live.Name != "live" || *live.FunctionVersion != "1" ||
		*live.Description != "production" || *live.RevisionId == "" || live.RoutingConfig != nil {
		t.Fatalf("CreateAlias: %+v %v", live, err)
	}
	resp := srv.signed(srv.creds("default"), "POST", "/2015-03-31/functions/al/aliases",
		[]byte(`{"Name":"dev","FunctionVersion":"$LATEST"}`), time.Now(), nil)
	if resp.StatusCode != http.StatusCreated {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("CreateAlias dev: %d %s", resp.StatusCode, b)
	}
	bad := []struct {
		in     lambda.CreateAliasInput
		code   string
		status int
	}{
		{lambda.CreateAliasInput{Name: aws.String("live"), FunctionVersion: aws.String("2")}, "ResourceConflictException", 409},
		{lambda.CreateAliasInput{Name: aws.String("123"), FunctionVersion: aws.String("1")}, "ValidationException", 400},
		{lambda.CreateAliasInput{Name: aws.String("x"), FunctionVersion: aws.String("9")}, "ResourceNotFoundException", 404},
		{lambda.CreateAliasInput{Name: aws.String("x"), FunctionVersion: aws.String("latest")}, "ValidationException", 400},
		{lambda.CreateAliasInput{Name: aws.String("x"), FunctionVersion: aws.String("1"),
			RoutingConfig: &types.AliasRoutingConfiguration{AdditionalVersionWeights: map[string]float64{"1": 0.5}}}, "InvalidParameterValueException", 400},
		{lambda.CreateAliasInput{Name: aws.String("x"), FunctionVersion: aws.String("$LATEST"),
			RoutingConfig: &types.AliasRoutingConfiguration{AdditionalVersionWeights: map[string]float64{"1": 0.5}}}, "InvalidParameterValueException", 400},
		{lambda.CreateAliasInput{Name: aws.String("x"), FunctionVersion: aws.String("1"),
			RoutingConfig: &types.AliasRoutingConfiguration{AdditionalVersionWeights: map[string]float64{"2": 1.5}}}, "ValidationException", 400},
		{lambda.CreateAliasInput{Name: aws.String("x"), FunctionVersion: aws.String("1"),
			RoutingConfig: &types.AliasRoutingConfiguration{AdditionalVersionWeights: map[string]float64{"2": 0.1, "3": 0.1}}}, "InvalidParameterValueException", 400},
		{lambda.CreateAliasInput{Name: aws.String("x"), FunctionVersion: aws.String("1"),
			RoutingConfig: &types.AliasRoutingConfiguration{AdditionalVersionWeights: map[string]float64{"$LATEST": 0.5}}}, "ValidationException", 400},
		{lambda.CreateAliasInput{Name: aws.String("x"), FunctionVersion: aws.String("1"),
			RoutingConfig: &types.AliasRoutingConfiguration{AdditionalVersionWeights: map[string]float64{"7": 0.5}}}, "ResourceNotFoundException", 404},
	}
	for i, b := range bad {
		in := b.in
		in.FunctionName = aws.String("al")
		_, err := c.CreateAlias(ctx, &in)
		if err == nil {
			t.Fatalf("bad alias %d accepted", i)
		}
		apiErr(t, err, b.code, b.status)
	}
	_, err = c.CreateAlias(ctx, &lambda.CreateAliasInput{FunctionName: aws.String("nofn"), Name: aws.String("a"), FunctionVersion: aws.String("1")})
	apiErr(t, err, "ResourceNotFoundException", 404)

	g, err := c.GetAlias(ctx, &lambda.GetAliasInput{FunctionName: aws.String("al"), Name: aws.String("live")})
	if err != nil || *g.RevisionId != *live.RevisionId || *g.FunctionVersion != "1" {
		t.Fatalf("GetAlias: %+v %v", g, err)
	}
	_, err = c.GetAlias(ctx, &lambda.GetAliasInput{FunctionName: aws.String("al"), Name: aws.String("nope")})
	apiErr(t, err, "ResourceNotFoundException", 404)
	if want := "Cannot find alias arn: " + arn + ":nope"; apiMessage(err) != want {
		t.Fatalf("message %q, want %q", apiMessage(err), want)
	}
	_, err = c.UpdateAlias(ctx, &lambda.UpdateAliasInput{FunctionName: aws.String("al"), Name: aws.String("nope"), FunctionVersion: aws.String("1")})
	apiErr(t, err, "ResourceNotFoundException", 404)

	// Invoking an alias runs its version.
	v, body := envInvoke(t, c, "al:live")
	if v != "1" || envOf(body, "VER") != "1" {
		t.Fatalf("invoke live: %s VER=%s", v, envOf(body, "VER"))
	}
	checkVersionSeen(t, body, "1", arn+":live")
	if v, body = envInvoke(t, c, arn+":dev"); v != "$LATEST" || envOf(body, "VER") != "latest" {
		t.Fatalf("invoke dev: %s VER=%s", v, envOf(body, "VER"))
	}
	checkVersionSeen(t, body, "$LATEST", arn+":dev")
	gf, err := c.GetFunction(ctx, &lambda.GetFunctionInput{FunctionName: aws.String("al"), Qualifier: aws.String("live")})
	if err != nil || *gf.Configuration.Version != "1" || *gf.Configuration.FunctionArn != arn+":live" {
		t.Fatalf("GetFunction of an alias: %+v %v", gf.Configuration, err)
	}

	// UpdateAlias: RevisionId precondition; the next invoke follows.
	_, err = c.UpdateAlias(ctx, &lambda.UpdateAliasInput{FunctionName: aws.String("al"), Name: aws.String("live"),
		FunctionVersion: aws.String("2"), RevisionId: aws.String("stale")})
	apiErr(t, err, "PreconditionFailedException", 412)
	u, err := c.UpdateAlias(ctx, &lambda.UpdateAliasInput{FunctionName: aws.String("al"), Name: aws.String("live"),
		FunctionVersion: aws.String("2"), RevisionId: live.RevisionId})
	if err != nil || *u.FunctionVersion != "2" || *u.Description != "production" || *u.RevisionId == *live.RevisionId {
		t.Fatalf("UpdateAlias: %+v %v", u, err)
	}
	if v, _ := envInvoke(t, c, "al:live"); v != "2" {
		t.Fatalf("after UpdateAlias the alias ran version %s", v)
	}

	// Weighted routing: half of the invocations go to version 2.
	u, err = c.UpdateAlias(ctx, &lambda.UpdateAliasInput{FunctionName: aws.String("al"), Name: aws.String("live"),
		FunctionVersion: aws.String("1"),
		RoutingConfig:   &types.AliasRoutingConfiguration{AdditionalVersionWeights: map[string]float64{"2": 0.5}}})
	if err != nil || u.RoutingConfig == nil || u.RoutingConfig.AdditionalVersionWeights["2"] != 0.5 {
		t.Fatalf("UpdateAlias with routing: %+v %v", u, err)
	}
	counts := map[string]int{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	errs := make(chan error, 200)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 50 {
				out, err := c.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("al:live"), Payload: []byte(`{"mode":"env"}`)})
				if err != nil {
					errs <- err
					return
				}
				var m map[string]any
				_ = json.Unmarshal(out.Payload, &m)
				if envOf(m, "VER") != *out.ExecutedVersion {
					errs <- errors.New("X-Amz-Executed-Version " + *out.ExecutedVersion + " but VER=" + envOf(m, "VER"))
					return
				}
				mu.Lock()
				counts[*out.ExecutedVersion]++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if counts["1"]+counts["2"] != 200 || counts["1"] < 60 || counts["1"] > 140 {
		t.Fatalf("200 invokes of a 50/50 alias ran %v", counts)
	}
	t.Logf("50/50 alias over 200 invokes: %v", counts)

	// ListAliases, filtered and paged.
	la, err := c.ListAliases(ctx, &lambda.ListAliasesInput{FunctionName: aws.String("al")})
	if err != nil || len(la.Aliases) != 2 || *la.Aliases[0].Name != "dev" || *la.Aliases[1].Name != "live" ||
		la.Aliases[1].RoutingConfig.AdditionalVersionWeights["2"] != 0.5 {
		t.Fatalf("ListAliases: %+v %v", la, err)
	}
	la, err = c.ListAliases(ctx, &lambda.ListAliasesInput{FunctionName: aws.String("al"), FunctionVersion: aws.String("1")})
	if err != nil || len(la.Aliases) != 1 || *la.Aliases[0].Name != "live" {
		t.Fatalf("ListAliases of version 1: %+v %v", la, err)
	}
	la, err = c.ListAliases(ctx, &lambda.ListAliasesInput{FunctionName: aws.String("al"), MaxItems: aws.Int32(1)})
	if err != nil || len(la.Aliases) != 1 || la.NextMarker == nil {
		t.Fatalf("ListAliases page 1: %+v %v", la, err)
	}
	la, err = c.ListAliases(ctx, &lambda.ListAliasesInput{FunctionName: aws.String("al"), MaxItems: aws.Int32(1), Marker: la.NextMarker})
	if err != nil || len(la.Aliases) != 1 || *la.Aliases[0].Name != "live" || la.NextMarker != nil {
		t.Fatalf("ListAliases page 2: %+v %v", la, err)
	}

	// A version an alias routes to cannot be deleted; aliases are not
	// deleted through DeleteFunction.
	for _, q := range []string{"1", "2"} {
		_, err = c.DeleteFunction(ctx, &lambda.DeleteFunctionInput{FunctionName: aws.String("al"), Qualifier: aws.String(q)})
		apiErr(t, err, "ResourceConflictException", 409)
		if want := "Unable to delete version because the following aliases reference it: [live]"; apiMessage(err) != want {
			t.Fatalf("message %q, want %q", apiMessage(err), want)
		}
	}
	_, err = c.DeleteFunction(ctx, &lambda.DeleteFunctionInput{FunctionName: aws.String("al"), Qualifier: aws.String("live")})
	apiErr(t, err, "InvalidParameterValueException", 400)
	// Routing removed, version 1 is free to go.
	if _, err := c.UpdateAlias(ctx, &lambda.UpdateAliasInput{FunctionName: aws.String("al"), Name: aws.String("live"),
		FunctionVersion: aws.String("2"), RoutingConfig: &types.AliasRoutingConfiguration{}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DeleteFunction(ctx, &lambda.DeleteFunctionInput{FunctionName: aws.String("al"), Qualifier: aws.String("1")}); err != nil {
		t.Fatalf("delete version 1: %v", err)
	}
	_, err = c.GetFunction(ctx, &lambda.GetFunctionInput{FunctionName: aws.String("al:1")})
	apiErr(t, err, "ResourceNotFoundException", 404)

	// DeleteAlias: 204, then gone; again is not an error (as Lambda).
	resp = srv.signed(srv.creds("default"), "DELETE", "/2015-03-31/functions/al/aliases/dev", nil, time.Now(), nil)
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("DeleteAlias: %d", resp.StatusCode)
	}
	_, err = c.GetAlias(ctx, &lambda.GetAliasInput{FunctionName: aws.String("al"), Name: aws.String("dev")})
	apiErr(t, err, "ResourceNotFoundException", 404)
	_, err = c.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("al:dev")})
	apiErr(t, err, "ResourceNotFoundException", 404)
	if _, err := c.DeleteAlias(ctx, &lambda.DeleteAliasInput{FunctionName: aws.String("al"), Name: aws.String("dev")}); err != nil {
		t.Fatalf("deleting a deleted alias: %v", err)
	}

	// Deleting the function deletes its versions, aliases, sandboxes and
	// code.
	if _, err := c.DeleteFunction(ctx, &lambda.DeleteFunctionInput{FunctionName: aws.String("al")}); err != nil {
		t.Fatal(err)
	}
	_, err = c.GetAlias(ctx, &lambda.GetAliasInput{FunctionName: aws.String("al"), Name: aws.String("live")})
	apiErr(t, err, "ResourceNotFoundException", 404)
	_, err = c.GetFunctionConfiguration(ctx, &lambda.GetFunctionConfigurationInput{FunctionName: aws.String("al:2")})
	apiErr(t, err, "ResourceNotFoundException", 404)
	_, err = c.ListVersionsByFunction(ctx, &lambda.ListVersionsByFunctionInput{FunctionName: aws.String("al")})
	apiErr(t, err, "ResourceNotFoundException", 404)
	_, err = c.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("al:live")})
	apiErr(t, err, "ResourceNotFoundException", 404)
	waitFor(t, "every sandbox of the deleted function to go", func() bool {
		return dp.worker.Sandboxes() == 0 && len(dp.manager.Counts()) == 0
	})
	if objs, err := st.CodeObjects(ctx, account); err != nil || len(objs) != 0 {
		t.Fatalf("code left after delete: %v %v", objs, err)
	}
	// A new function of that name starts with no versions or aliases.
	createProbe(t, c, "al", nil)
	l, err := c.ListVersionsByFunction(ctx, &lambda.ListVersionsByFunctionInput{FunctionName: aws.String("al")})
	if err != nil || len(l.Versions) != 1 {
		t.Fatalf("versions of the new function: %+v %v", l, err)
	}
	la, err = c.ListAliases(ctx, &lambda.ListAliasesInput{FunctionName: aws.String("al")})
	if err != nil || len(la.Aliases) != 0 {
		t.Fatalf("aliases of the new function: %+v %v", la, err)
	}
	if v := publish(t, c, "al"); *v.Version != "1" {
		t.Fatalf("the new function's first version is %s", *v.Version)
	}
}

// Reserved concurrency is the function's, whichever versions run.
func TestReservedConcurrencyAcrossVersions(t *testing.T) {
	ctx := context.Background()
	_, c, dp := startInvokeEmber(t)
	createProbe(t, c, "rc", nil)
	publish(t, c, "rc")
	if _, err := c.PutFunctionConcurrency(ctx, &lambda.PutFunctionConcurrencyInput{
		FunctionName: aws.String("rc"), ReservedConcurrentExecutions: aws.Int32(1)}); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := c.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("rc:1"), Payload: []byte(`{"mode":"sleep","n":2000}`)})
		done <- err
	}()
	waitFor(t, "version 1 to run", func() bool { return dp.manager.Counts()[workermanager.Busy] == 1 })
	_, err := c.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("rc")})
	var tm *types.TooManyRequestsException
	if !errors.As(err, &tm) || tm.Reason != types.ThrottleReasonReservedFunctionConcurrentInvocationLimitExceeded {
		t.Fatalf("$LATEST while version 1 holds the function's one slot: %v", err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func lambdaARN(t *testing.T, c *lambda.Client, name string) string {
	t.Helper()
	g, err := c.GetFunctionConfiguration(context.Background(), &lambda.GetFunctionConfigurationInput{FunctionName: aws.String(name)})
	if err != nil {
		t.Fatal(err)
	}
	return *g.FunctionArn
}
