package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/lambda"

	"github.com/emberfn/ember/internal/natsd"
)

func TestSignatures(t *testing.T) {
	ctx := context.Background()
	srv := startEmber(t, t.TempDir())
	good := srv.creds("default")
	body, _ := json.Marshal(map[string]any{
		"FunctionName": "sig", "Runtime": "provided.al2023", "Code": map[string]any{"ZipFile": bootstrapZip(t, "s")},
	})
	const path = "/2015-03-31/functions"
	wrongSecret := good
	wrongSecret.SecretAccessKey = strings.Repeat("x", 40)
	unknown := aws.Credentials{AccessKeyID: "EMBRAAAAAAAAAAAAAAAA", SecretAccessKey: good.SecretAccessKey}

	cases := []struct {
		name   string
		creds  aws.Credentials
		at     time.Time
		mutate func(*http.Request)
		code   string
	}{
		{"tampered body", good, time.Now(), func(r *http.Request) {
			b := bytes.Replace(body, []byte(`"sig"`), []byte(`"evil"`), 1)
			r.Body = ioNop(b)
			r.ContentLength = int64(len(b))
		}, "InvalidSignatureException"},
		{"tampered path", good, time.Now(), func(r *http.Request) { r.URL.Path = "/2015-03-31/functions/" }, "InvalidSignatureException"},
		{"wrong secret", wrongSecret, time.Now(), nil, "InvalidSignatureException"},
		{"unknown key", unknown, time.Now(), nil, "UnrecognizedClientException"},
		{"stale date", good, time.Now().Add(-20 * time.Minute), nil, "InvalidSignatureException"},
		{"future date", good, time.Now().Add(20 * time.Minute), nil, "InvalidSignatureException"},
		{"missing header", good, time.Now(), func(r *http.Request) { r.Header.Del("Authorization") }, "MissingAuthenticationTokenException"},
		{"missing date", good, time.Now(), func(r *http.Request) { r.Header.Del("X-Amz-Date") }, ""},
		{"garbled header", good, time.Now(), func(r *http.Request) { r.Header.Set("Authorization", "AWS4-HMAC-SHA256 nonsense") }, "IncompleteSignatureException"},
	}
	for _, tc := range cases {
		resp := srv.signed(tc.creds, "POST", path, body, tc.at, tc.mutate)
		if resp.StatusCode != 403 {
			t.Fatalf("%s: status %d, want 403", tc.name, resp.StatusCode)
		}
		if tc.code != "" {
			rawErr(t, resp, tc.code, 403)
		}
	}
	// Nothing was created by any of them.
	c := srv.client(good)
	l, err := c.ListFunctions(ctx, &lambda.ListFunctionsInput{})
	if err != nil || len(l.Functions) != 0 {
		t.Fatalf("after refused requests: %+v %v", l, err)
	}
	// The same request, untampered, works.
	resp := srv.signed(good, "POST", path, body, time.Now(), nil)
	if resp.StatusCode != 201 {
		t.Fatalf("good request: %d", resp.StatusCode)
	}
	// The SDK sees the right exception for a wrong secret.
	_, err = srv.client(wrongSecret).ListFunctions(ctx, &lambda.ListFunctionsInput{})
	apiErr(t, err, "InvalidSignatureException", 403)
	_, err = srv.client(unknown).ListFunctions(ctx, &lambda.ListFunctionsInput{})
	apiErr(t, err, "UnrecognizedClientException", 403)
}

func TestAccountsAreIsolated(t *testing.T) {
	ctx := context.Background()
	srv := startEmber(t, t.TempDir())
	alice := srv.client(srv.creds("default"))
	out, err := alice.CreateFunction(ctx, createInput("shared-name", bootstrapZip(t, "alice")))
	if err != nil {
		t.Fatal(err)
	}

	// `ember account create bob` against the running server.
	credFile := filepath.Join(t.TempDir(), "creds")
	var stdout, stderr bytes.Buffer
	err = run(ctx, []string{"account", "create", "bob", "--endpoint", srv.url, "--data-dir", srv.dataDir, "--write", credFile}, &stdout, &stderr)
	if err != nil {
		t.Fatalf("account create: %v %s", err, stderr.String())
	}
	if !regexp.MustCompile(`(?m)^\[bob\]\naws_access_key_id = EMBR[A-Z2-7]{16}\naws_secret_access_key = \S{40}$`).MatchString(stdout.String()) {
		t.Fatalf("account create printed %q", stdout.String())
	}
	cfg, err := config.LoadDefaultConfig(ctx, config.WithSharedCredentialsFiles([]string{credFile}), config.WithSharedConfigProfile("bob"), config.WithRegion("us-east-1"))
	if err != nil {
		t.Fatal(err)
	}
	bobCreds, err := cfg.Credentials.Retrieve(ctx)
	if err != nil {
		t.Fatal(err)
	}
	bob := srv.client(bobCreds)

	l, err := bob.ListFunctions(ctx, &lambda.ListFunctionsInput{})
	if err != nil || len(l.Functions) != 0 {
		t.Fatalf("bob lists %+v %v", l, err)
	}
	for _, name := range []string{"shared-name", *out.FunctionArn, strings.Join(strings.Split(*out.FunctionArn, ":")[4:], ":")} {
		_, err = bob.GetFunction(ctx, &lambda.GetFunctionInput{FunctionName: aws.String(name)})
		apiErr(t, err, "ResourceNotFoundException", 404)
		_, err = bob.DeleteFunction(ctx, &lambda.DeleteFunctionInput{FunctionName: aws.String(name)})
		apiErr(t, err, "ResourceNotFoundException", 404)
	}
	if _, err := bob.CreateFunction(ctx, createInput("shared-name", bootstrapZip(t, "bob"))); err != nil {
		t.Fatalf("bob's own function of the same name: %v", err)
	}
	g, err := alice.GetFunction(ctx, &lambda.GetFunctionInput{FunctionName: aws.String("shared-name")})
	if err != nil || *g.Configuration.CodeSha256 != *out.CodeSha256 {
		t.Fatalf("alice's function changed: %v", err)
	}
	// bob is no administrator.
	err = run(ctx, []string{"account", "create", "mallory", "--endpoint", srv.url, "--credentials", credFile, "--profile", "bob"}, &stdout, &stderr)
	if err == nil || !strings.Contains(err.Error(), "AccessDeniedException") {
		t.Fatalf("bob created an account: %v", err)
	}
}

func TestRestartLosesNothing(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	srv := startEmber(t, dir)
	creds := srv.creds("default")
	c := srv.client(creds)
	zip := bootstrapZip(t, "persist")
	out, err := c.CreateFunction(ctx, createInput("keep", zip))
	if err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	if err := run(ctx, []string{"account", "create", "carol", "--endpoint", srv.url, "--data-dir", dir, "--write", filepath.Join(dir, "carol")}, &stdout, &stderr); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(srv.stdout.String(), filepath.Join(dir, "credentials")) {
		t.Fatalf("first start did not say where the credentials are: %q", srv.stdout.String())
	}
	fi, err := os.Stat(filepath.Join(dir, "credentials"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("credentials file: %v %v", fi, err)
	}
	srv.stop()

	srv2 := startEmber(t, dir)
	if srv2.creds("default") != creds {
		t.Fatal("the first account's keys changed across a restart")
	}
	if strings.Contains(srv2.stdout.String(), "created account") {
		t.Fatal("a second account was bootstrapped on restart")
	}
	c2 := srv2.client(creds)
	g, err := c2.GetFunction(ctx, &lambda.GetFunctionInput{FunctionName: aws.String("keep")})
	if err != nil {
		t.Fatal(err)
	}
	if *g.Configuration.RevisionId != *out.RevisionId || *g.Configuration.CodeSha256 != *out.CodeSha256 {
		t.Fatalf("function changed across restart: %+v", g.Configuration)
	}
	resp, err := http.Get(*g.Code.Location)
	if err != nil {
		t.Fatal(err)
	}
	got := new(bytes.Buffer)
	_, _ = got.ReadFrom(resp.Body)
	resp.Body.Close()
	if !bytes.Equal(got.Bytes(), zip) {
		t.Fatal("code changed across restart")
	}
	cfg, err := config.LoadDefaultConfig(ctx, config.WithSharedCredentialsFiles([]string{filepath.Join(dir, "carol")}), config.WithSharedConfigProfile("carol"), config.WithRegion("us-east-1"))
	if err != nil {
		t.Fatal(err)
	}
	carol, _ := cfg.Credentials.Retrieve(ctx)
	if _, err := srv2.client(carol).ListFunctions(ctx, &lambda.ListFunctionsInput{}); err != nil {
		t.Fatalf("carol's keys after restart: %v", err)
	}
}

func TestExternalNATS(t *testing.T) {
	base := takeBaseline()
	dir := t.TempDir()
	ns, err := natsd.Start(natsd.Config{StoreDir: t.TempDir(), Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		ns.Shutdown()
		base.check(t, dir)
	}()
	srv := startEmber(t, dir, func(c *serveConfig) { c.NATSURL = ns.ClientURL() })
	srv.noLeakCheck = true
	c := srv.client(srv.creds("default"))
	if _, err := c.CreateFunction(context.Background(), createInput("ext", bootstrapZip(t, "ext"))); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(srv.dataDir, "nats")); !os.IsNotExist(err) {
		t.Fatal("an embedded NATS store was made although --nats was given")
	}
	srv.stop()
	// A second Ember on the same NATS sees the function.
	srv2 := startEmber(t, srv.dataDir, func(c *serveConfig) { c.NATSURL = ns.ClientURL() })
	srv2.noLeakCheck = true
	defer srv2.stop()
	if _, err := srv2.client(srv2.creds("default")).GetFunction(context.Background(), &lambda.GetFunctionInput{FunctionName: aws.String("ext")}); err != nil {
		t.Fatal(err)
	}
}

// TestProcessShutsDownOnSIGTERM runs the real binary (this test binary
// re-executed as ember) and stops it with SIGTERM.
func TestProcessShutsDownOnSIGTERM(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "serve", "--listen", "127.0.0.1:0", "--data-dir", dir)
	cmd.Env = append(os.Environ(), "EMBER_TEST_AS_MAIN=1")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	lines := make(chan string, 10)
	go func() {
		buf := make([]byte, 4096)
		acc := ""
		for {
			n, err := stdout.Read(buf)
			acc += string(buf[:n])
			for strings.Contains(acc, "\n") {
				i := strings.Index(acc, "\n")
				lines <- acc[:i]
				acc = acc[i+1:]
			}
			if err != nil {
				close(lines)
				return
			}
		}
	}()
	var url string
	deadline := time.After(60 * time.Second)
	for url == "" {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("ember exited: %s", stderr.String())
			}
			if m := regexp.MustCompile(`serving the Lambda API on (http://\S+)`).FindStringSubmatch(l); m != nil {
				url = m[1]
			}
		case <-deadline:
			t.Fatal("ember did not start")
		}
	}
	resp, err := http.Get(url + "/healthz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("healthz %v %v", resp, err)
	}
	resp.Body.Close()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("ember exited with %v: %s", err, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("ember did not stop on SIGTERM")
	}
	if !strings.Contains(stderr.String(), "stopped") {
		t.Fatalf("no clean stop logged: %s", stderr.String())
	}
}
