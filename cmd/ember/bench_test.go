package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// TestBenchQuick runs `ember bench --quick`: it checks that the benchmark
// works end to end (every row measured, no errors) and leaves no process
// behind (processes, cgroups, goroutines, files, mounts), not its figures.
func TestBenchQuick(t *testing.T) {
	if newestRuntime("python") == "" || newestRuntime("nodejs") == "" {
		t.Fatalf("the host serves no Python or no Node.js runtime (.ci/run installs them)")
	}
	leaks := takeBaseline()
	var out, errOut bytes.Buffer
	if err := run(context.Background(), []string{"bench", "--quick"}, &out, &errOut); err != nil {
		t.Fatalf("bench --quick: %v\n%s", err, errOut.String())
	}
	t.Logf("%s\n%s", errOut.String(), out.String())
	for _, row := range []string{"loopback HTTP echo (floor)", "Ember cold invoke (new sandbox", "Ember warm invoke",
		"Ember cold invoke, " + newestRuntime("python") + " hello", "Ember cold invoke, " + newestRuntime("nodejs") + " hello",
		"Ember sandbox creation, 20 at once", "20 idle warm sandboxes", "Ember's own memory per sandbox",
		"function processes:", "Ember async accept (Event invoke, durable, to 202)", "Ember async processed",
		"async: 232 events sent", "aws-lambda-go round trip alone", "CPU per request (ms)",
		"of which the function's own start", "the function's processes alone allow at most", "an invoke takes at least one client round trip"} {
		if !strings.Contains(out.String(), row) {
			t.Fatalf("no %q row in:\n%s", row, out.String())
		}
	}
	// The warm invokes' CPU split found the function's processes: their
	// CPU per invoke is not zero.
	splits := 0
	for _, line := range strings.Split(out.String(), "\n") {
		rest, ok := strings.CutPrefix(strings.TrimSpace(line), warmName+" ")
		if !ok || !strings.Contains(rest, " + ") {
			continue
		}
		splits++
		f := strings.Fields(rest) // conc, process, "+", function, "=", sum
		if len(f) != 6 || f[3] == "0.000" {
			t.Errorf("the CPU split of %q found no function CPU", line)
		}
	}
	if splits != 3 {
		t.Errorf("%d CPU splits of the warm invokes, want 3:\n%s", splits, out.String())
	}
	leaks.check(t, t.TempDir())
}
