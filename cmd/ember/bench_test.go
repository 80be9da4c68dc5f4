package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// TestBenchQuick runs `ember bench --quick`: it checks that the benchmark
// works end to end (every row measured, no errors), not its figures.
func TestBenchQuick(t *testing.T) {
	var out, errOut bytes.Buffer
	if err := run(context.Background(), []string{"bench", "--quick"}, &out, &errOut); err != nil {
		t.Fatalf("bench --quick: %v\n%s", err, errOut.String())
	}
	for _, row := range []string{"loopback HTTP echo (floor)", "Ember cold invoke (new sandbox", "Ember warm invoke",
		"Ember cold invoke, python3.11 hello", "Ember cold invoke, nodejs20.x hello"} {
		if !strings.Contains(out.String(), row) {
			t.Fatalf("no %q row in:\n%s", row, out.String())
		}
	}
}
