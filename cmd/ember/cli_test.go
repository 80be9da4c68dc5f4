package main

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
)

// emberCLI runs the real binary (this test binary re-executed as ember)
// against srv, with the installation's credentials file found by
// --data-dir, and returns stdout, stderr and the exit error.
func emberCLI(t *testing.T, srv *emberServer, args ...string) (string, string, error) {
	t.Helper()
	cmd := exec.Command(os.Args[0], append(args, "--endpoint", srv.url, "--data-dir", srv.dataDir)...)
	env := []string{"EMBER_TEST_AS_MAIN=1"}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "AWS_") && !strings.HasPrefix(kv, "EMBER_") {
			env = append(env, kv)
		}
	}
	cmd.Env = env
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	return out.String(), errOut.String(), err
}

func TestCLI(t *testing.T) {
	srv, _, _ := startInvokeEmber(t)
	// A directory with the probe's bootstrap, deployed as it is.
	dir := t.TempDir()
	zr, err := zip.NewReader(bytes.NewReader(probe(t)), int64(len(probe(t))))
	if err != nil {
		t.Fatal(err)
	}
	rc, _ := zr.File[0].Open()
	b := new(bytes.Buffer)
	_, _ = b.ReadFrom(rc)
	rc.Close()
	if err := os.WriteFile(filepath.Join(dir, "bootstrap"), b.Bytes(), 0o755); err != nil {
		t.Fatal(err)
	}

	out, errOut, err := emberCLI(t, srv, "deploy", "clifn", dir, "--memory", "256", "--env", "COLOR=blue")
	if err != nil || !strings.Contains(errOut, "created clifn") || !strings.Contains(out, ":function:clifn") {
		t.Fatalf("deploy: %v\n%s\n%s", err, out, errOut)
	}
	out, errOut, err = emberCLI(t, srv, "deploy", dir, "--name", "clifn", "--timeout", "9")
	if err != nil || !strings.Contains(errOut, "updated clifn") {
		t.Fatalf("redeploy: %v\n%s\n%s", err, out, errOut)
	}
	out, _, err = emberCLI(t, srv, "ls")
	if err != nil || !strings.Contains(out, "NAME") || !strings.Contains(out, "clifn") || !strings.Contains(out, "256 MB") || !strings.Contains(out, "9 s") {
		t.Fatalf("ls: %v\n%s", err, out)
	}
	out, errOut, err = emberCLI(t, srv, "invoke", "clifn", `{"mode":"env"}`, "-l")
	if err != nil || !strings.Contains(out, `"COLOR":"blue"`) || !strings.Contains(errOut, "REPORT RequestId") {
		t.Fatalf("invoke: %v\n%s\n%s", err, out, errOut)
	}
	out, _, err = emberCLI(t, srv, "invoke", "clifn", `{"x":1}`, "--json")
	var res struct {
		StatusCode int
		Payload    map[string]any
		Log        string
	}
	if err != nil || json.Unmarshal([]byte(out), &res) != nil || res.StatusCode != 200 || res.Payload["x"] != float64(1) || res.Log == "" {
		t.Fatalf("invoke --json: %v\n%s", err, out)
	}
	_, errOut, err = emberCLI(t, srv, "invoke", "clifn", `{"mode":"error","label":"cli"}`)
	if err == nil || !strings.Contains(errOut, "ember: errorString: something went wrong: cli\n") {
		t.Fatalf("failing invoke: %v\n%s", err, errOut)
	}
	_, errOut, err = emberCLI(t, srv, "invoke", "nope")
	if err == nil || !strings.Contains(errOut, "ResourceNotFoundException: Function not found") {
		t.Fatalf("unknown function: %v\n%s", err, errOut)
	}
	var logsOut string
	waitFor(t, "ember logs to show the invocations", func() bool {
		logsOut, _, err = emberCLI(t, srv, "logs", "clifn")
		return err == nil && strings.Contains(logsOut, "REPORT RequestId") && strings.Contains(logsOut, "START RequestId")
	})
	_, errOut, err = emberCLI(t, srv, "rm", "clifn")
	if err != nil || !strings.Contains(errOut, "deleted clifn") {
		t.Fatalf("rm: %v\n%s", err, errOut)
	}
	out, _, err = emberCLI(t, srv, "ls", "--json")
	if err != nil || strings.TrimSpace(out) != "null" && strings.TrimSpace(out) != "[]" {
		t.Fatalf("ls after rm: %v %q", err, out)
	}
}

// builtEmber is the ember binary made by `go build`, as a user has it.
type builtEmber struct {
	t   *testing.T
	bin string
	// xdg is XDG_DATA_HOME for every run: an empty directory, so no
	// default data dir (and no credentials file) of the machine's is used.
	xdg string
}

// buildEmber builds cmd/ember into a directory of the test.
func buildEmber(t *testing.T) *builtEmber {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "ember")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Env = append(os.Environ(), "GOFLAGS=")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	xdg := filepath.Join(dir, "xdg")
	if err := os.Mkdir(xdg, 0o700); err != nil {
		t.Fatal(err)
	}
	return &builtEmber{t: t, bin: bin, xdg: xdg}
}

// env is the environment of a run: the test's without any AWS_ or EMBER_
// variable, plus extra.
func (b *builtEmber) env(extra ...string) []string {
	env := []string{"XDG_DATA_HOME=" + b.xdg, "AWS_CONFIG_FILE=" + filepath.Join(b.xdg, "no-aws-config")}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "AWS_") && !strings.HasPrefix(kv, "EMBER_") && !strings.HasPrefix(kv, "XDG_DATA_HOME=") {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

// run runs the binary to its end (two minutes at most) and returns its
// stdout, stderr and exit code.
func (b *builtEmber) run(env []string, args ...string) (string, string, int) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, b.bin, args...)
	cmd.Env = env
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return out.String(), errOut.String(), 0
	case errors.As(err, &ee) && ee.ExitCode() >= 0:
		return out.String(), errOut.String(), ee.ExitCode()
	}
	b.t.Fatalf("ember %q: %v\n%s", args, err, errOut.String())
	return "", "", -1
}

// cli runs a client command against srv with its installation's
// credentials (--data-dir) and --endpoint.
func (b *builtEmber) cli(srv *emberServer, args ...string) (string, string, int) {
	b.t.Helper()
	return b.run(b.env(), append(args, "--endpoint", srv.url, "--data-dir", srv.dataDir)...)
}

// builtServe is `ember serve` of the built binary on a free port.
type builtServe = emberProcess

// serve starts `ember serve` with extra flags and waits until it serves;
// at the test's end it is stopped with SIGTERM and must exit 0.
func (b *builtEmber) serve(extra ...string) *builtServe {
	t := b.t
	t.Helper()
	dir := t.TempDir()
	cmd := exec.Command(b.bin, append([]string{"serve", "--listen", "127.0.0.1:0", "--data-dir", dir}, extra...)...)
	cmd.Env = b.env()
	return runServeProcess(t, cmd, dir, true)
}

// The built binary against a real `ember serve` of the same binary: help,
// deploy of a .zip with upload progress, invoke errors, logs -f and
// --json, rm --json, and the endpoint and credentials a user's
// environment gives.
func TestCLIBuiltBinary(t *testing.T) {
	b := buildEmber(t)

	t.Run("help", func(t *testing.T) {
		b := &builtEmber{t: t, bin: b.bin, xdg: b.xdg}
		for _, sub := range []string{"deploy", "invoke", "logs", "ls", "rm"} {
			for _, h := range []string{"--help", "-h"} {
				out, errOut, code := b.run(b.env(), sub, h)
				// usage: SYNOPSIS, a blank line, a description, a blank
				// line, the flags.
				_, about, _ := strings.Cut(out, "\n\n")
				about, _, _ = strings.Cut(about, "\n\n")
				if code != 0 || !strings.HasPrefix(out, "usage: ember "+sub+" ") || len(about) < 40 ||
					!strings.Contains(out, "\n\nflags:\n") ||
					!strings.Contains(out, "-json") || !strings.Contains(out, "-endpoint") || errOut != "" {
					t.Errorf("ember %s %s: exit %d\nstdout:\n%s\nstderr:\n%s", sub, h, code, out, errOut)
				}
			}
		}
		for _, c := range []struct {
			args []string
			says string
		}{
			{[]string{"--help"}, "ember COMMAND --help describes one"},
			{[]string{"help"}, "ember COMMAND --help describes one"},
			{[]string{"queue", "--help"}, "usage: ember queue create NAME"},
			{[]string{"queue", "create", "--help"}, "usage: ember queue create NAME"},
			{[]string{"serve", "--help"}, "-log-format"},
		} {
			if out, errOut, code := b.run(b.env(), c.args...); code != 0 || !strings.Contains(out+errOut, c.says) {
				t.Errorf("ember %q: exit %d\n%s%s", c.args, code, out, errOut)
			}
		}
		// Wrong uses exit 2 with the help on stderr, nothing on stdout.
		for _, c := range []struct {
			args []string
			says string
		}{
			{[]string{"rm"}, "ember rm: want at least one function name"},
			{[]string{"ls", "extra"}, "ember ls: takes no arguments"},
			{[]string{"logs"}, "ember logs: want one function name"},
			{[]string{"invoke"}, "ember invoke: want a function name"},
			{[]string{"deploy", "x"}, "ember deploy: want a function name and a path"},
			{[]string{"ls", "--bogus"}, "flag provided but not defined: -bogus"},
		} {
			out, errOut, code := b.run(b.env(), c.args...)
			if code != 2 || out != "" || !strings.Contains(errOut, c.says) || !strings.Contains(errOut, "usage: ember "+c.args[0]) {
				t.Errorf("ember %q: exit %d\nstdout:\n%s\nstderr:\n%s", c.args, code, out, errOut)
			}
		}
	})

	srv := b.serve()
	c := srv.client(srv.creds("default"))
	zipPath := filepath.Join(t.TempDir(), "probe.zip")
	if err := os.WriteFile(zipPath, probe(t), 0o644); err != nil {
		t.Fatal(err)
	}
	if len(probe(t)) <= 1<<20 {
		t.Fatalf("the probe's zip is %d bytes: not over 1 MB, so it shows no progress", len(probe(t)))
	}

	t.Run("deploy a zip with progress", func(t *testing.T) {
		b := &builtEmber{t: t, bin: b.bin, xdg: b.xdg}
		out, errOut, code := b.cli(srv.emberServer, "deploy", "zipfn", zipPath, "--runtime", "provided.al2", "--timeout", "1")
		if code != 0 || !strings.Contains(errOut, "created zipfn") || !strings.Contains(out, ":function:zipfn\tprovided.al2\t") {
			t.Fatalf("deploy: exit %d\n%s\n%s", code, out, errOut)
		}
		// Progress in tenths, 0% to 100%, the last once and then a newline.
		mb := fmt.Sprintf("%.1f MB", float64(base64.StdEncoding.EncodedLen(len(probe(t))))/(1<<20))
		if !strings.Contains(errOut, "\ruploading ") || !strings.Contains(errOut, ": 0%") ||
			strings.Count(errOut, ": 100%") != 1 || !strings.Contains(errOut, ": 100%\ncreated zipfn") {
			t.Fatalf("no progress (of about %s) shown:\n%q", mb, errOut)
		}
		// Updating with the default runtime given explicitly applies it.
		out, errOut, code = b.cli(srv.emberServer, "deploy", zipPath, "--name", "zipfn", "--runtime", "provided.al2023")
		if code != 0 || !strings.Contains(errOut, "updated zipfn") || !strings.Contains(out, "\tprovided.al2023\t") {
			t.Fatalf("update: exit %d\n%s\n%s", code, out, errOut)
		}
		fn, err := c.GetFunction(context.Background(), &lambda.GetFunctionInput{FunctionName: aws.String("zipfn")})
		if err != nil || fn.Configuration.Runtime != "provided.al2023" || aws.ToInt32(fn.Configuration.Timeout) != 1 {
			t.Fatalf("after the update: %+v %v", fn, err)
		}
		// A small package shows none.
		small := filepath.Join(t.TempDir(), "small.zip")
		if err := os.WriteFile(small, bootstrapZip(t, "small"), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, errOut, code = b.cli(srv.emberServer, "deploy", "smallfn", small); code != 0 || strings.Contains(errOut, "uploading") {
			t.Fatalf("small deploy: exit %d\n%s", code, errOut)
		}
	})

	t.Run("invoke errors", func(t *testing.T) {
		b := &builtEmber{t: t, bin: b.bin, xdg: b.xdg}
		out, errOut, code := b.cli(srv.emberServer, "invoke", "zipfn", `{"mode":"sleep","n":3000}`)
		if code != 2 || !strings.Contains(out, `"errorType":"Sandbox.Timedout"`) ||
			!regexp.MustCompile(`^ember: Sandbox.Timedout: RequestId: [0-9a-f-]{36} Error: Task timed out after 1.00 seconds\n$`).MatchString(errOut) {
			t.Fatalf("timed out invoke: exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
		}
		_, errOut, code = b.cli(srv.emberServer, "invoke", "zipfn", `{"mode":"error","label":"built"}`)
		if code != 2 || !strings.HasSuffix(errOut, "ember: errorString: something went wrong: built\n") {
			t.Fatalf("failing invoke: exit %d\n%s", code, errOut)
		}
		out, errOut, code = b.cli(srv.emberServer, "invoke", "zipfn", `{"ok":true}`)
		if code != 0 || strings.TrimSpace(out) != `{"ok":true}` || errOut != "" {
			t.Fatalf("invoke: exit %d\n%s\n%s", code, out, errOut)
		}
	})

	t.Run("endpoint and credentials from the environment", func(t *testing.T) {
		b := &builtEmber{t: t, bin: b.bin, xdg: b.xdg}
		// EMBER_ENDPOINT instead of --endpoint.
		out, errOut, code := b.run(b.env("EMBER_ENDPOINT="+srv.url), "ls", "--data-dir", srv.dataDir)
		if code != 0 || !strings.Contains(out, "zipfn") {
			t.Fatalf("ls with EMBER_ENDPOINT: exit %d\n%s\n%s", code, out, errOut)
		}
		// The keys from a shared credentials file's profile; its default
		// profile's keys are wrong, and there is no data dir to fall back on.
		good := srv.creds("default")
		credFile := filepath.Join(t.TempDir(), "credentials")
		body := "[default]\naws_access_key_id = AKIAWRONGWRONGWRONG1\naws_secret_access_key = wrong\n\n" +
			"[ops]\naws_access_key_id = " + good.AccessKeyID + "\naws_secret_access_key = " + good.SecretAccessKey + "\n"
		if err := os.WriteFile(credFile, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		env := b.env("EMBER_ENDPOINT="+srv.url, "AWS_SHARED_CREDENTIALS_FILE="+credFile)
		out, errOut, code = b.run(append(env, "AWS_PROFILE=ops"), "ls", "--json")
		var fns []map[string]any
		if code != 0 || json.Unmarshal([]byte(out), &fns) != nil || len(fns) != 2 {
			t.Fatalf("ls with AWS_PROFILE=ops: exit %d\n%s\n%s", code, out, errOut)
		}
		if _, errOut, code = b.run(append(env, "AWS_PROFILE=default"), "ls"); code != 2 || !strings.Contains(errOut, "ember: UnrecognizedClientException") {
			t.Fatalf("ls with the wrong profile: exit %d\n%s", code, errOut)
		}
	})

	t.Run("logs -f and --json", func(t *testing.T) {
		b := &builtEmber{t: t, bin: b.bin, xdg: b.xdg}
		if _, errOut, code := b.cli(srv.emberServer, "deploy", "follow", zipPath); code != 0 {
			t.Fatalf("deploy: %s", errOut)
		}
		// Follow a function that has logged nothing yet: it waits.
		cmd := exec.Command(b.bin, "logs", "follow", "-f", "--endpoint", srv.url, "--data-dir", srv.dataDir)
		cmd.Env = b.env()
		out, errOut := &syncBuffer{}, &syncBuffer{}
		cmd.Stdout, cmd.Stderr = out, errOut
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		stopped := false
		defer func() {
			if !stopped {
				_ = cmd.Process.Kill()
				<-exited
			}
		}()
		pollUntil(t, "logs -f to wait for the first line", 30*time.Second, 20*time.Millisecond, func() bool {
			return strings.Contains(errOut.String(), "waiting for the first line of /aws/lambda/follow")
		})
		var ids []string
		for i, label := range []string{"first", "second"} {
			o, _ := invokeJSON(t, c, "follow", map[string]any{"mode": "log", "n": 2, "label": label}, false)
			ids = append(ids, requestIDOf(t, o))
			pollUntil(t, "logs -f to print the "+label+" invocation", 30*time.Second, 20*time.Millisecond, func() bool {
				return strings.Contains(out.String(), "REPORT RequestId: "+ids[i])
			})
			select {
			case err := <-exited:
				stopped = true
				t.Fatalf("logs -f exited: %v\n%s", err, errOut.String())
			default:
			}
		}
		// Each line once, in order, with its timestamp.
		got := out.String()
		for _, id := range ids {
			if n := strings.Count(got, "START RequestId: "+id); n != 1 {
				t.Errorf("the START line of %s printed %d times:\n%s", id, n, got)
			}
		}
		for _, l := range []string{"log line 0 of first", "log line 1 of first", "to stderr first", "log line 0 of second", "to stderr second"} {
			if n := strings.Count(got, " "+l+"\n"); n != 1 {
				t.Errorf("%q printed %d times:\n%s", l, n, got)
			}
		}
		if i, j := strings.Index(got, "of first"), strings.Index(got, "of second"); i < 0 || j < i {
			t.Errorf("out of order:\n%s", got)
		}
		if !regexp.MustCompile(`(?m)^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z START RequestId: `).MatchString(got) {
			t.Errorf("no timestamps:\n%s", got)
		}
		// Interrupted, it stops and exits 0.
		if err := cmd.Process.Signal(os.Interrupt); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-exited:
			stopped = true
			if err != nil {
				t.Fatalf("logs -f on SIGINT: %v\n%s", err, errOut.String())
			}
		case <-time.After(30 * time.Second):
			t.Fatal("logs -f did not stop on SIGINT")
		}

		// logs --json: one object per line.
		jsonOut, errText, code := b.cli(srv.emberServer, "logs", "follow", "--json")
		var starts int
		for _, l := range strings.Split(strings.TrimSpace(jsonOut), "\n") {
			var e struct {
				Timestamp       int64
				Stream, EventID string
				Message         string
			}
			if err := json.Unmarshal([]byte(l), &e); err != nil || e.Timestamp == 0 || e.Stream == "" || e.EventID == "" {
				t.Fatalf("logs --json line %q: %v", l, err)
			}
			if strings.HasPrefix(e.Message, "START RequestId: ") {
				starts++
			}
		}
		if code != 0 || starts != 2 {
			t.Fatalf("logs --json: exit %d, %d START lines\n%s\n%s", code, starts, jsonOut, errText)
		}
		// Without -f, a function without logs is an error.
		if _, errText, code = b.cli(srv.emberServer, "logs", "smallfn"); code != 2 || !strings.Contains(errText, "ember: ResourceNotFoundException") {
			t.Fatalf("logs of a function without logs: exit %d\n%s", code, errText)
		}
	})

	t.Run("rm --json", func(t *testing.T) {
		b := &builtEmber{t: t, bin: b.bin, xdg: b.xdg}
		out, errOut, code := b.cli(srv.emberServer, "rm", "zipfn", "smallfn", "follow", "--json")
		var res struct{ Deleted []string }
		if code != 0 || json.Unmarshal([]byte(out), &res) != nil || strings.Join(res.Deleted, ",") != "zipfn,smallfn,follow" || errOut != "" {
			t.Fatalf("rm --json: exit %d\n%s\n%s", code, out, errOut)
		}
		out, errOut, code = b.cli(srv.emberServer, "rm", "nope", "--json")
		if code != 2 || out != "" || !strings.Contains(errOut, "ember: nope: ResourceNotFoundException") {
			t.Fatalf("rm of an unknown function: exit %d\n%s\n%s", code, out, errOut)
		}
		if out, _, code = b.cli(srv.emberServer, "ls", "--json"); code != 0 || strings.TrimSpace(out) != "[]" {
			t.Fatalf("ls after rm: exit %d %q", code, out)
		}
	})
}
