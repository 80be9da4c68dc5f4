package main

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
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
	if err == nil || !strings.Contains(errOut, "the function failed (Unhandled)") {
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
