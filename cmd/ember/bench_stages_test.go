package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/emberfn/ember/internal/stagetime"
)

// TestStagesOf: each step is the median between consecutive points, over
// the invokes that passed both; a point only a few invokes passed (a cold
// start's extra point here) does not split the others' step, and an
// invoke that passed it does not count in the step it skips.
func TestStagesOf(t *testing.T) {
	var invokes [][stagetime.NumPoints]int64
	for i := int64(1); i <= 5; i++ {
		var p [stagetime.NumPoints]int64
		p[stagetime.ClientStart] = 1000
		p[stagetime.FrontEnd] = 1000 + 10*i    // 10..50: median 30
		p[stagetime.ClientDone] = 1000 + 100*i // from FrontEnd: 90i, median 270
		invokes = append(invokes, p)
	}
	odd := invokes[0]
	odd[stagetime.ToWorker] = odd[stagetime.FrontEnd] + 1 // one invoke passes a point more
	odd[stagetime.ClientDone] = odd[stagetime.FrontEnd] + 1e6
	invokes = append(invokes, odd)
	backwards := invokes[0] // one recorded out of order: counts in no step it spans backwards
	backwards[stagetime.FrontEnd] = backwards[stagetime.ClientStart] - 5
	invokes = append(invokes, backwards)

	got := stagesOf(invokes)
	want := []stage{
		{from: stagetime.ClientStart, to: stagetime.FrontEnd, p50: 30, n: 6},
		{from: stagetime.FrontEnd, to: stagetime.ClientDone, p50: 270, n: 6},
	}
	if len(got) != len(want) {
		t.Fatalf("stagesOf = %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("step %d = %+v, want %+v", i, got[i], want[i])
		}
	}

	var out bytes.Buffer
	printStages(&out, []cpuSplit{{Name: "row", stages: invokes}})
	if !strings.Contains(out.String(), "handler begins           -> client done                   0.3 us") {
		t.Errorf("printStages:\n%s", out.String())
	}
}
