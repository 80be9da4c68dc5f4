package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/lambda"

	"github.com/emberfn/ember/internal/auth"
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
		{"missing date", good, time.Now(), func(r *http.Request) { r.Header.Del("X-Amz-Date") }, "IncompleteSignatureException"},
		{"garbled header", good, time.Now(), func(r *http.Request) { r.Header.Set("Authorization", "AWS4-HMAC-SHA256 nonsense") }, "IncompleteSignatureException"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rawErr(t, srv.signed(tc.creds, "POST", path, body, tc.at, tc.mutate), tc.code, 403)
		})
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
	carolFile := filepath.Join(t.TempDir(), "carol")
	if err := run(ctx, []string{"account", "create", "carol", "--endpoint", srv.url, "--data-dir", dir, "--write", carolFile}, &stdout, &stderr); err != nil {
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
	_, carolSecret, err := auth.ReadCredentials(carolFile, "carol")
	if err != nil {
		t.Fatal(err)
	}
	// At rest, the secrets are in the credentials file written for the
	// user and nowhere else under the data dir (the NATS store holds them
	// sealed): carol's, handed out by the CLI, nowhere at all.
	secretsOnlyInCredentials(t, dir, map[string]string{"default": creds.SecretAccessKey, "carol": carolSecret},
		map[string]bool{"default": true})

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
	cfg, err := config.LoadDefaultConfig(ctx, config.WithSharedCredentialsFiles([]string{carolFile}), config.WithSharedConfigProfile("carol"), config.WithRegion("us-east-1"))
	if err != nil {
		t.Fatal(err)
	}
	carol, _ := cfg.Credentials.Retrieve(ctx)
	if _, err := srv2.client(carol).ListFunctions(ctx, &lambda.ListFunctionsInput{}); err != nil {
		t.Fatalf("carol's keys after restart: %v", err)
	}
	srv2.stop()
	secretsOnlyInCredentials(t, dir, map[string]string{"default": creds.SecretAccessKey, "carol": carol.SecretAccessKey},
		map[string]bool{"default": true})
}

// secretsOnlyInCredentials walks the data dir (the NATS store under
// DIR/nats included) and fails if a secret's bytes appear in any file but
// DIR/credentials, and there only for the profiles of inCredentials. It
// looks for each secret as is, in hex, and in base64 at every alignment
// (as JSON would store it inside a []byte).
func secretsOnlyInCredentials(t *testing.T, dir string, secrets map[string]string, inCredentials map[string]bool) {
	t.Helper()
	credPath := filepath.Join(dir, "credentials")
	forms := map[string][][]byte{}
	for name, s := range secrets {
		if len(s) != 40 {
			t.Fatalf("secret of %s has %d characters", name, len(s))
		}
		fs := [][]byte{[]byte(s), []byte(hex.EncodeToString([]byte(s)))}
		for k := 0; k < 3; k++ {
			enc := base64.StdEncoding.EncodeToString(append(make([]byte, k), s...))
			fs = append(fs, []byte(enc[4:len(enc)-4])) // the part no neighbour changes
		}
		forms[name] = fs
	}
	files, natsFiles := 0, 0
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		files++
		if strings.HasPrefix(path, filepath.Join(dir, "nats")+string(filepath.Separator)) {
			natsFiles++
		}
		for name, variants := range forms {
			for _, f := range variants {
				if !bytes.Contains(b, f) {
					continue
				}
				if path == credPath && inCredentials[name] && bytes.Equal(f, []byte(secrets[name])) {
					continue
				}
				t.Errorf("the secret of %s appears in %s (as %q)", name, path, f)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	cred, err := os.ReadFile(credPath)
	if err != nil {
		t.Fatal(err)
	}
	for name := range inCredentials {
		if !bytes.Contains(cred, []byte(secrets[name])) {
			t.Fatalf("the secret of %s is not in %s", name, credPath)
		}
	}
	if natsFiles == 0 {
		t.Fatalf("no files under %s (%d files in all): the walk proves nothing", filepath.Join(dir, "nats"), files)
	}
}

func TestExternalNATS(t *testing.T) {
	dir := t.TempDir()
	ns := startExternalNATS(t, dir)
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

// TestUnknownKeyRefusedBeforeBody: a request signed with an access key
// Ember never issued, declaring a 60 MB body (under the 70 MB bound), is
// answered 403 UnrecognizedClientException while the client has sent only
// its first megabyte: Ember does not read, let alone buffer, the body of a
// caller it cannot know. The same holds for an unsigned request.
func TestUnknownKeyRefusedBeforeBody(t *testing.T) {
	srv := startEmber(t, t.TempDir())
	unknown := aws.Credentials{AccessKeyID: "EMBRAAAAAAAAAAAAAAAA", SecretAccessKey: srv.creds("default").SecretAccessKey}
	const declared, sent = 60 << 20, 1 << 20
	for _, tc := range []struct {
		name string
		sign bool
		code string
	}{{"unknown key", true, "UnrecognizedClientException"}, {"unsigned", false, "MissingAuthenticationTokenException"}} {
		t.Run(tc.name, func(t *testing.T) {
			pr, pw := io.Pipe()
			defer pw.Close()
			// An Ember that waited for the body would never answer: give
			// up after 30 s, closing the body so that the client's write
			// of it ends too.
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			context.AfterFunc(ctx, func() { pw.CloseWithError(errors.New("test: no answer in time")) })
			req, err := http.NewRequestWithContext(ctx, "POST", srv.url+"/2015-03-31/functions", pr)
			if err != nil {
				t.Fatal(err)
			}
			req.ContentLength = declared
			req.Header.Set("Content-Type", "application/json")
			if tc.sign {
				// The payload hash of a body that will never be sent in
				// full: the key is refused before it matters.
				if err := v4.NewSigner().SignHTTP(context.Background(), unknown, req, strings.Repeat("0", 64), "lambda", "us-east-1", time.Now()); err != nil {
					t.Fatal(err)
				}
			}
			var written atomic.Int64
			go func() {
				chunk := bytes.Repeat([]byte(" "), 64<<10)
				for written.Load() < sent {
					n, err := pw.Write(chunk)
					written.Add(int64(n))
					if err != nil {
						return
					}
				}
			}()
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatalf("no answer before the body was sent: %v", err)
			}
			defer resp.Body.Close()
			rawErr(t, resp, tc.code, 403)
			if n := written.Load(); n > sent {
				t.Fatalf("the client sent %d bytes, more than the %d the test allows", n, sent)
			}
			pw.CloseWithError(errors.New("test: rest of the body not sent"))
		})
	}
}
