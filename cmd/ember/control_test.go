package main

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"io"
	"net/http"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"
	"github.com/aws/smithy-go"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/emberfn/ember/internal/store"
)

// requestIDRE is the form of Ember's X-Amzn-RequestId (a UUID, as Lambda's).
var requestIDRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

func createInput(name string, zip []byte) *lambda.CreateFunctionInput {
	return &lambda.CreateFunctionInput{
		FunctionName: aws.String(name),
		Runtime:      types.RuntimeProvidedal2023,
		Role:         aws.String("arn:aws:iam::123456789012:role/ember"),
		Handler:      aws.String("bootstrap"),
		Code:         &types.FunctionCode{ZipFile: zip},
	}
}

func TestFunctionLifecycle(t *testing.T) {
	ctx := context.Background()
	var st *store.Store
	srv := startEmber(t, t.TempDir(), func(c *serveConfig) { c.onStore = func(s *store.Store) { st = s } })
	c := srv.client(srv.creds("default"))

	zip1 := bootstrapZip(t, "one")
	sum := sha256.Sum256(zip1)
	out, err := c.CreateFunction(ctx, createInput("hello", zip1))
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^arn:aws:lambda:us-east-1:\d{12}:function:hello$`).MatchString(*out.FunctionArn) {
		t.Fatalf("FunctionArn %q", *out.FunctionArn)
	}
	account := strings.Split(*out.FunctionArn, ":")[4]
	if *out.CodeSha256 != base64.StdEncoding.EncodeToString(sum[:]) || out.CodeSize != int64(len(zip1)) {
		t.Fatalf("CodeSha256 %q CodeSize %d", *out.CodeSha256, out.CodeSize)
	}
	if *out.Timeout != 3 || *out.MemorySize != 128 || *out.EphemeralStorage.Size != 512 || *out.Version != "$LATEST" ||
		out.State != types.StateActive || out.LastUpdateStatus != types.LastUpdateStatusSuccessful ||
		out.PackageType != types.PackageTypeZip || out.Runtime != types.RuntimeProvidedal2023 || *out.RevisionId == "" {
		t.Fatalf("unexpected configuration %+v", out)
	}
	if _, err := time.Parse("2006-01-02T15:04:05.000-0700", *out.LastModified); err != nil {
		t.Fatalf("LastModified %q: %v", *out.LastModified, err)
	}

	// Get by name, full ARN, partial ARN, and with $LATEST.
	for _, name := range []string{"hello", *out.FunctionArn, account + ":function:hello", "hello:$LATEST"} {
		g, err := c.GetFunctionConfiguration(ctx, &lambda.GetFunctionConfigurationInput{FunctionName: aws.String(name)})
		if err != nil {
			t.Fatalf("get %s: %v", name, err)
		}
		if *g.RevisionId != *out.RevisionId || *g.CodeSha256 != *out.CodeSha256 {
			t.Fatalf("get %s: %+v", name, g)
		}
	}
	_, err = c.GetFunction(ctx, &lambda.GetFunctionInput{FunctionName: aws.String("hello"), Qualifier: aws.String("7")})
	apiErr(t, err, "ResourceNotFoundException", 404)

	// Code.Location downloads exactly the package, without signing; a
	// tampered URL does not.
	gf, err := c.GetFunction(ctx, &lambda.GetFunctionInput{FunctionName: aws.String("hello")})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(*gf.Code.Location)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(got) != string(zip1) {
		t.Fatalf("code download: %d, %d bytes", resp.StatusCode, len(got))
	}
	tampered := strings.Replace(*gf.Code.Location, "X-Ember-Expires=", "X-Ember-Expires=9", 1)
	resp, err = http.Get(tampered)
	if err != nil {
		t.Fatal(err)
	}
	rawErr(t, resp, "AccessDeniedException", 403)

	// Update the configuration; RevisionId changes and is a precondition.
	uc, err := c.UpdateFunctionConfiguration(ctx, &lambda.UpdateFunctionConfigurationInput{
		FunctionName: aws.String("hello"), Timeout: aws.Int32(30), MemorySize: aws.Int32(256),
		Description: aws.String("says hello"), Handler: aws.String("main"),
		Environment:      &types.Environment{Variables: map[string]string{"GREETING": "hi"}},
		EphemeralStorage: &types.EphemeralStorage{Size: aws.Int32(1024)},
		RevisionId:       out.RevisionId,
	})
	if err != nil {
		t.Fatal(err)
	}
	if *uc.Timeout != 30 || *uc.MemorySize != 256 || *uc.Description != "says hello" || *uc.Handler != "main" ||
		uc.Environment.Variables["GREETING"] != "hi" || *uc.EphemeralStorage.Size != 1024 || *uc.RevisionId == *out.RevisionId {
		t.Fatalf("after update: %+v", uc)
	}
	_, err = c.UpdateFunctionConfiguration(ctx, &lambda.UpdateFunctionConfigurationInput{
		FunctionName: aws.String("hello"), Timeout: aws.Int32(5), RevisionId: out.RevisionId})
	apiErr(t, err, "PreconditionFailedException", 412)

	// Update the code: a dry run changes nothing; a real one does, and
	// the old package is removed from the store.
	zip2 := bootstrapZip(t, "two")
	dry, err := c.UpdateFunctionCode(ctx, &lambda.UpdateFunctionCodeInput{FunctionName: aws.String("hello"), ZipFile: zip2, DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if *dry.RevisionId != *uc.RevisionId {
		t.Fatal("a dry run changed the function")
	}
	_, err = c.UpdateFunctionCode(ctx, &lambda.UpdateFunctionCodeInput{FunctionName: aws.String("hello"), ZipFile: zip2, RevisionId: out.RevisionId})
	apiErr(t, err, "PreconditionFailedException", 412)
	ucode, err := c.UpdateFunctionCode(ctx, &lambda.UpdateFunctionCodeInput{FunctionName: aws.String("hello"), ZipFile: zip2, RevisionId: uc.RevisionId})
	if err != nil {
		t.Fatal(err)
	}
	sum2 := sha256.Sum256(zip2)
	if *ucode.CodeSha256 != base64.StdEncoding.EncodeToString(sum2[:]) || *ucode.RevisionId == *uc.RevisionId || *ucode.Timeout != 30 {
		t.Fatalf("after code update: %+v", ucode)
	}
	objs, err := st.CodeObjects(ctx, account)
	if err != nil || len(objs) != 1 {
		t.Fatalf("code objects after update: %v %v", objs, err)
	}

	// ListFunctions pages with Marker/MaxItems, in name order.
	for _, n := range []string{"d-fn", "b-fn", "c-fn", "a-fn"} {
		if _, err := c.CreateFunction(ctx, createInput(n, bootstrapZip(t, n))); err != nil {
			t.Fatal(err)
		}
	}
	var names []string
	var marker *string
	pages := 0
	for {
		l, err := c.ListFunctions(ctx, &lambda.ListFunctionsInput{MaxItems: aws.Int32(2), Marker: marker})
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, f := range l.Functions {
			names = append(names, *f.FunctionName)
		}
		if marker = l.NextMarker; marker == nil {
			break
		}
		if pages > 10 {
			t.Fatal("paging does not end")
		}
	}
	if want := []string{"a-fn", "b-fn", "c-fn", "d-fn", "hello"}; !slices.Equal(names, want) || pages != 3 {
		t.Fatalf("listed %v in %d pages", names, pages)
	}
	_, err = c.ListFunctions(ctx, &lambda.ListFunctionsInput{MaxItems: aws.Int32(10001)})
	apiErr(t, err, "ValidationException", 400)

	// Delete: 204, then gone, and its code is gone.
	if _, err := c.DeleteFunction(ctx, &lambda.DeleteFunctionInput{FunctionName: aws.String("hello")}); err != nil {
		t.Fatal(err)
	}
	_, err = c.GetFunction(ctx, &lambda.GetFunctionInput{FunctionName: aws.String("hello")})
	apiErr(t, err, "ResourceNotFoundException", 404)
	_, err = c.DeleteFunction(ctx, &lambda.DeleteFunctionInput{FunctionName: aws.String("hello")})
	apiErr(t, err, "ResourceNotFoundException", 404)
	objs, _ = st.CodeObjects(ctx, account)
	if slices.Contains(objs, strings.ToLower(hexOf(sum2[:]))) || len(objs) != 4 {
		t.Fatalf("code objects after delete: %v", objs)
	}
}

func hexOf(b []byte) string {
	const digits = "0123456789abcdef"
	out := make([]byte, 0, 2*len(b))
	for _, c := range b {
		out = append(out, digits[c>>4], digits[c&15])
	}
	return string(out)
}

func TestControlErrors(t *testing.T) {
	ctx := context.Background()
	srv := startEmber(t, t.TempDir())
	creds := srv.creds("default")
	c := srv.client(creds)
	if _, err := c.CreateFunction(ctx, createInput("dup", bootstrapZip(t, "x"))); err != nil {
		t.Fatal(err)
	}
	_, err := c.CreateFunction(ctx, createInput("dup", bootstrapZip(t, "x")))
	apiErr(t, err, "ResourceConflictException", 409)

	bad := map[string]func(*lambda.CreateFunctionInput){
		"unknown runtime": func(in *lambda.CreateFunctionInput) { in.Runtime = "cobol85" },
		"no runtime":      func(in *lambda.CreateFunctionInput) { in.Runtime = "" },
		"timeout 0":       func(in *lambda.CreateFunctionInput) { in.Timeout = aws.Int32(0) },
		"timeout 901":     func(in *lambda.CreateFunctionInput) { in.Timeout = aws.Int32(901) },
		"memory 64":       func(in *lambda.CreateFunctionInput) { in.MemorySize = aws.Int32(64) },
		"memory 10241":    func(in *lambda.CreateFunctionInput) { in.MemorySize = aws.Int32(10241) },
		"tmp 100": func(in *lambda.CreateFunctionInput) {
			in.EphemeralStorage = &types.EphemeralStorage{Size: aws.Int32(100)}
		},
		"reserved env": func(in *lambda.CreateFunctionInput) {
			in.Environment = &types.Environment{Variables: map[string]string{"AWS_REGION": "x"}}
		},
		"env over 4KB": func(in *lambda.CreateFunctionInput) {
			in.Environment = &types.Environment{Variables: map[string]string{"BIG": strings.Repeat("x", 4100)}}
		},
		"bad role": func(in *lambda.CreateFunctionInput) { in.Role = aws.String("admin") },
		"no code":  func(in *lambda.CreateFunctionInput) { in.Code = &types.FunctionCode{} },
		"s3 code": func(in *lambda.CreateFunctionInput) {
			in.Code = &types.FunctionCode{S3Bucket: aws.String("b"), S3Key: aws.String("k")}
		},
		"unknown arch": func(in *lambda.CreateFunctionInput) { in.Architectures = []types.Architecture{"riscv"} },
		"two archs": func(in *lambda.CreateFunctionInput) {
			in.Architectures = []types.Architecture{types.ArchitectureX8664, types.ArchitectureArm64}
		},
		"another host's arch": func(in *lambda.CreateFunctionInput) {
			in.Architectures = []types.Architecture{types.ArchitectureArm64}
			if runtime.GOARCH == "arm64" {
				in.Architectures = []types.Architecture{types.ArchitectureX8664}
			}
		},
		"image package": func(in *lambda.CreateFunctionInput) { in.PackageType = types.PackageTypeImage },
		"long desc":     func(in *lambda.CreateFunctionInput) { in.Description = aws.String(strings.Repeat("d", 257)) },
		"not a zip":     func(in *lambda.CreateFunctionInput) { in.Code.ZipFile = []byte("hello, not a zip") },
		"no bootstrap": func(in *lambda.CreateFunctionInput) {
			in.Code.ZipFile = makeZip(t, zipEntry{name: "main", mode: 0o755, body: "x"})
		},
		"bad name chars": func(in *lambda.CreateFunctionInput) { in.FunctionName = aws.String("bad/name") },
	}
	for name, mutate := range bad {
		in := createInput("valid-name", bootstrapZip(t, name))
		mutate(in)
		_, err := c.CreateFunction(ctx, in)
		if err == nil {
			t.Fatalf("%s: accepted", name)
		}
		apiErr(t, err, wantErrorType(name, modelViolations), 400)
	}
	_, err = c.GetFunction(ctx, &lambda.GetFunctionInput{FunctionName: aws.String("valid-name")})
	apiErr(t, err, "ResourceNotFoundException", 404)

	// Raw requests: malformed JSON, wrong media type, unknown operation.
	resp := srv.signed(creds, "POST", "/2015-03-31/functions", []byte(`{"FunctionName": "x",`), time.Now(), nil)
	rawErr(t, resp, "InvalidRequestContentException", 400)
	resp = srv.signed(creds, "POST", "/2015-03-31/functions", []byte(`{"FunctionName": 7}`), time.Now(), nil)
	rawErr(t, resp, "InvalidRequestContentException", 400)
	resp = srv.signedAs(creds, "POST", "/2015-03-31/functions", "text/xml", []byte(`<xml/>`), time.Now(), nil)
	rawErr(t, resp, "UnsupportedMediaTypeException", 415)
	resp = srv.signed(creds, "GET", "/2015-03-31/nothing-here", nil, time.Now(), nil)
	rawErr(t, resp, "UnknownOperationException", 404)

	// A zip over 50 MB (stored, so it cannot shrink) inside a body under
	// Lambda's 70 MB request limit: 413.
	big := make([]byte, 51<<20)
	for i := range big {
		big[i] = byte(i*7 + i>>9)
	}
	in := createInput("too-big", makeZip(t, zipEntry{name: "bootstrap", mode: 0o755, body: "#!/bin/sh\n"}, zipEntry{name: "blob", mode: 0o644, body: string(big), stored: true}))
	_, err = c.CreateFunction(ctx, in)
	apiErr(t, err, "RequestTooLargeException", 413)

	// A body over the request limit is refused before it is read: the
	// answer comes while the client has sent none of its 71 MB.
	pr, pw := io.Pipe()
	defer pw.Close()
	bodyCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	context.AfterFunc(bodyCtx, func() { pw.CloseWithError(errors.New("test: no answer in time")) })
	req, err := http.NewRequestWithContext(bodyCtx, "POST", srv.url+"/2015-03-31/functions", pr)
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = 71 << 20
	req.Header.Set("Content-Type", "application/json")
	r, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("a declared 71 MB body: %v; want a 413 answer before the body is sent", err)
	}
	rawErr(t, r, "RequestTooLargeException", 413)
	r.Body.Close()
	pw.CloseWithError(errors.New("test: body not sent"))
	l, err := c.ListFunctions(ctx, &lambda.ListFunctionsInput{})
	if err != nil || len(l.Functions) != 1 {
		t.Fatalf("after bad requests: %v %v", l, err)
	}
}

func TestControlRateLimit(t *testing.T) {
	srv := startEmber(t, t.TempDir(), func(c *serveConfig) { c.ControlRate = 1; c.ControlBurst = 3 })
	c := srv.client(srv.creds("default"))
	throttled := 0
	for i := 0; i < 8; i++ {
		_, err := c.ListFunctions(context.Background(), &lambda.ListFunctionsInput{})
		if err != nil {
			apiErr(t, err, "TooManyRequestsException", 429)
			throttled++
		}
	}
	if throttled < 4 {
		t.Fatalf("only %d of 8 calls throttled at 1/s with burst 3", throttled)
	}
	resp := srv.signed(srv.creds("default"), "GET", "/2015-03-31/functions/", nil, time.Now(), nil)
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 429 || !strings.Contains(string(body), `"Reason":"CallerRateLimitExceeded"`) {
		t.Fatalf("throttle answer %d %s", resp.StatusCode, body)
	}
}

// TestStoreFailureThroughSDK: when the store fails under a running Ember
// (here its functions bucket is deleted from another connection to the
// NATS server it uses), the real SDK sees 500 ServiceException, with an
// X-Amzn-RequestId and without the internal error; successful answers
// carry an X-Amzn-RequestId too.
func TestStoreFailureThroughSDK(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	ns := startExternalNATS(t, dir)
	srv := startEmber(t, dir, func(c *serveConfig) { c.NATSURL = ns.ClientURL() })
	srv.noLeakCheck = true
	defer srv.stop()
	c := srv.client(srv.creds("default"))

	out, err := c.CreateFunction(ctx, createInput("doomed", bootstrapZip(t, "doomed")))
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	rid, ok := awsmiddleware.GetRequestIDMetadata(out.ResultMetadata)
	if !ok || !requestIDRE.MatchString(rid) {
		t.Fatalf("CreateFunction's X-Amzn-RequestId %q (%v)", rid, ok)
	}
	seen[rid] = true
	g, err := c.GetFunction(ctx, &lambda.GetFunctionInput{FunctionName: aws.String("doomed")})
	if err != nil {
		t.Fatal(err)
	}
	if rid, _ := awsmiddleware.GetRequestIDMetadata(g.ResultMetadata); !requestIDRE.MatchString(rid) || seen[rid] {
		t.Fatalf("GetFunction's X-Amzn-RequestId %q is missing or repeated", rid)
	}

	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if err := js.DeleteKeyValue(ctx, "ember-functions"); err != nil {
		t.Fatal(err)
	}

	calls := map[string]func() error{
		"GetFunction": func() error {
			_, err := c.GetFunction(ctx, &lambda.GetFunctionInput{FunctionName: aws.String("doomed")})
			return err
		},
		"GetFunctionConfiguration": func() error {
			_, err := c.GetFunctionConfiguration(ctx, &lambda.GetFunctionConfigurationInput{FunctionName: aws.String("doomed")})
			return err
		},
		"ListFunctions": func() error {
			_, err := c.ListFunctions(ctx, &lambda.ListFunctionsInput{})
			return err
		},
		"UpdateFunctionConfiguration": func() error {
			_, err := c.UpdateFunctionConfiguration(ctx, &lambda.UpdateFunctionConfigurationInput{
				FunctionName: aws.String("doomed"), Timeout: aws.Int32(9)})
			return err
		},
		"CreateFunction": func() error {
			_, err := c.CreateFunction(ctx, createInput("another", bootstrapZip(t, "another")))
			return err
		},
		"DeleteFunction": func() error {
			_, err := c.DeleteFunction(ctx, &lambda.DeleteFunctionInput{FunctionName: aws.String("doomed")})
			return err
		},
	}
	for name, call := range calls {
		err := call()
		apiErr(t, err, "ServiceException", 500)
		var se *types.ServiceException
		if !errors.As(err, &se) {
			t.Fatalf("%s: the SDK did not decode a *types.ServiceException: %T %v", name, err, err)
		}
		var re *awshttp.ResponseError
		if !errors.As(err, &re) || re.HTTPStatusCode() != 500 {
			t.Fatalf("%s: no HTTP 500 response error: %v", name, err)
		}
		if id := re.ServiceRequestID(); !requestIDRE.MatchString(id) || seen[id] {
			t.Fatalf("%s: X-Amzn-RequestId %q is missing or repeated", name, id)
		} else {
			seen[id] = true
		}
		var ae smithy.APIError
		errors.As(err, &ae)
		if msg := ae.ErrorMessage(); msg == "" || strings.Contains(msg, "ember-functions") || strings.Contains(strings.ToLower(msg), "stream") {
			t.Fatalf("%s: ServiceException message %q is empty or leaks the internal error", name, msg)
		}
	}
}

// TestUpdateConfigurationPaths: UpdateFunctionConfiguration's Runtime
// change and its refusals, each with Lambda's error type and status and
// nothing changed; a bad ListFunctions Marker; a provided.al2 function.
func TestUpdateConfigurationPaths(t *testing.T) {
	ctx := context.Background()
	srv := startEmber(t, t.TempDir())
	c := srv.client(srv.creds("default"))

	in := createInput("al2", bootstrapZip(t, "al2"))
	in.Runtime = types.RuntimeProvidedal2
	al2, err := c.CreateFunction(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	if al2.Runtime != types.RuntimeProvidedal2 || al2.State != types.StateActive {
		t.Fatalf("provided.al2 function: %s %s", al2.Runtime, al2.State)
	}
	g, err := c.GetFunctionConfiguration(ctx, &lambda.GetFunctionConfigurationInput{FunctionName: aws.String("al2")})
	if err != nil || g.Runtime != types.RuntimeProvidedal2 {
		t.Fatalf("provided.al2 function read back: %v %v", g, err)
	}

	// provided.al2 -> provided.al2023: the same bootstrap package serves.
	u, err := c.UpdateFunctionConfiguration(ctx, &lambda.UpdateFunctionConfigurationInput{
		FunctionName: aws.String("al2"), Runtime: types.RuntimeProvidedal2023})
	if err != nil {
		t.Fatal(err)
	}
	if u.Runtime != types.RuntimeProvidedal2023 || *u.RevisionId == *al2.RevisionId || *u.CodeSha256 != *al2.CodeSha256 {
		t.Fatalf("after the runtime change: %s revision %s (was %s)", u.Runtime, *u.RevisionId, *al2.RevisionId)
	}
	g, err = c.GetFunctionConfiguration(ctx, &lambda.GetFunctionConfigurationInput{FunctionName: aws.String("al2")})
	if err != nil || g.Runtime != types.RuntimeProvidedal2023 || *g.RevisionId != *u.RevisionId {
		t.Fatalf("runtime change read back: %v %v", g, err)
	}

	bad := map[string]*lambda.UpdateFunctionConfigurationInput{
		"unknown runtime": {Runtime: "cobol85"},
		"timeout 0":       {Timeout: aws.Int32(0)},
		"memory 64":       {MemorySize: aws.Int32(64)},
		"reserved env":    {Environment: &types.Environment{Variables: map[string]string{"OK": "1", "AWS_LAMBDA_FUNCTION_NAME": "x"}}},
	}
	for name, in := range bad {
		in.FunctionName = aws.String("al2")
		_, err := c.UpdateFunctionConfiguration(ctx, in)
		if err == nil {
			t.Fatalf("%s: accepted", name)
		}
		typ := wantErrorType(name, modelViolations)
		apiErr(t, err, typ, 400)
		var ipv *types.InvalidParameterValueException
		if typ == "InvalidParameterValueException" && !errors.As(err, &ipv) {
			t.Fatalf("%s: the SDK did not decode a *types.InvalidParameterValueException: %T", name, err)
		}
	}
	after, err := c.GetFunctionConfiguration(ctx, &lambda.GetFunctionConfigurationInput{FunctionName: aws.String("al2")})
	if err != nil {
		t.Fatal(err)
	}
	if *after.RevisionId != *u.RevisionId || after.Runtime != types.RuntimeProvidedal2023 || *after.Timeout != 3 ||
		*after.MemorySize != 128 || after.Environment != nil {
		t.Fatalf("a refused update changed the function: %+v", after)
	}
	_, err = c.UpdateFunctionConfiguration(ctx, &lambda.UpdateFunctionConfigurationInput{
		FunctionName: aws.String("no-such-fn"), Timeout: aws.Int32(5)})
	apiErr(t, err, "ResourceNotFoundException", 404)

	// ListFunctions with a Marker it never handed out: not base64, or
	// base64 of something that is no function name.
	for _, m := range []string{"!!not-base64!!", base64.RawURLEncoding.EncodeToString([]byte("bad/name"))} {
		_, err = c.ListFunctions(ctx, &lambda.ListFunctionsInput{Marker: aws.String(m)})
		apiErr(t, err, "InvalidParameterValueException", 400)
	}
}

// modelViolations names the bad inputs of TestControlErrors and
// TestUpdateConfigurationPaths that break a constraint of Lambda's API
// model (a range, length, pattern or enum): the AWS request layer answers
// them with ValidationException, before Lambda's own checks, which
// answer InvalidParameterValueException.
var modelViolations = []string{"timeout 0", "timeout 901", "memory 64", "memory 10241", "tmp 100",
	"bad role", "long desc", "bad name chars", "unknown arch", "two archs"}

// wantErrorType is the error type a bad input named name gets.
func wantErrorType(name string, validation []string) string {
	if slices.Contains(validation, name) {
		return "ValidationException"
	}
	return "InvalidParameterValueException"
}
