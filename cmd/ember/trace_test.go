package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// traceCLI runs this test binary re-executed as `ember` with args.
func traceCLI(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "EMBER_TEST_AS_MAIN=1")
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	return out.String(), errOut.String(), err
}

// TestTraceCLI: `ember trace gen` writes a trace of periodic, bursty and
// rare functions; `ember trace replay` replays it and the hybrid policy
// has a lower cold-start fraction than the fixed keep-alive.
func TestTraceCLI(t *testing.T) {
	path := filepath.Join(t.TempDir(), "trace.json")
	_, errOut, err := traceCLI(t, "trace", "gen", "--out", path, "--seed", "7", "--length", "12h",
		"--periodic", "12", "--bursty", "9", "--rare", "9")
	if err != nil {
		t.Fatalf("trace gen: %v\n%s", err, errOut)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var f traceFile
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	classes := map[string]int{}
	for _, fn := range f.Functions {
		classes[fn.Class]++
	}
	if f.Format != traceFormat || len(f.Functions) != 30 || classes["periodic"] != 12 || classes["bursty"] != 9 ||
		classes["rare"] != 9 || len(f.Invocations) == 0 {
		t.Fatalf("trace: format %q, %d functions %v, %d invocations", f.Format, len(f.Functions), classes, len(f.Invocations))
	}
	// The same seed gives the same trace.
	again, errOut, err := traceCLI(t, "trace", "gen", "--seed", "7", "--length", "12h", "--periodic", "12", "--bursty", "9", "--rare", "9")
	if err != nil || again != string(b) {
		t.Fatalf("trace gen to stdout with the same seed differs (%v)\n%s", err, errOut)
	}

	out, errOut, err := traceCLI(t, "trace", "replay", path, "--json")
	if err != nil {
		t.Fatalf("trace replay: %v\n%s", err, errOut)
	}
	var rep replayReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("replay output: %v\n%s", err, out)
	}
	if rep.Invocations != len(f.Invocations) || rep.Functions != 30 || len(rep.Policies) != 2 {
		t.Fatalf("replay: %+v", rep)
	}
	fixed, hybrid := rep.Policies[0], rep.Policies[1]
	if fixed.Policy != "fixed" || hybrid.Policy != "hybrid" {
		t.Fatalf("policies %q, %q", fixed.Policy, hybrid.Policy)
	}
	for _, p := range rep.Policies {
		if p.ColdStartFraction <= 0 || p.ColdStartFraction > 1 || p.IdleSandboxSeconds <= 0 ||
			p.ByClass["periodic"].Invocations+p.ByClass["bursty"].Invocations+p.ByClass["rare"].Invocations != rep.Invocations {
			t.Fatalf("%s: %+v", p.Name, p)
		}
	}
	if hybrid.ColdStartFraction >= fixed.ColdStartFraction {
		t.Fatalf("hybrid cold-start fraction %.4f, fixed keep-alive %.4f: want the hybrid's lower",
			hybrid.ColdStartFraction, fixed.ColdStartFraction)
	}
	t.Logf("cold-start fraction: fixed %.4f, hybrid %.4f; idle sandbox-seconds: fixed %.0f, hybrid %.0f",
		fixed.ColdStartFraction, hybrid.ColdStartFraction, fixed.IdleSandboxSeconds, hybrid.IdleSandboxSeconds)

	// The table for people.
	table, _, err := traceCLI(t, "trace", "replay", path)
	if err != nil || !strings.Contains(table, "| fixed keep-alive 10m0s |") || !strings.Contains(table, "cold-start fraction") {
		t.Fatalf("replay table (%v):\n%s", err, table)
	}
	// Bad input is refused.
	if err := os.WriteFile(path, []byte(`{"format":"other"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, errOut, err := traceCLI(t, "trace", "replay", path); err == nil || !strings.Contains(errOut, "ember-trace/1") {
		t.Fatalf("a file of another format: %v %s", err, errOut)
	}
	if _, _, err := traceCLI(t, "trace", "nope"); err == nil {
		t.Fatal("trace nope succeeded")
	}
}
