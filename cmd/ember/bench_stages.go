package main

import (
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/emberfn/ember/internal/stagetime"
)

// stage is the median time from one point an invoke passes to the next one
// it passes.
type stage struct {
	from, to int
	p50      time.Duration
	n        int
}

// stagesOf returns the median of each step between consecutive points,
// over the invokes that passed both in that order (and none between
// them): two points marked on different threads may be recorded out of
// order, and such an invoke does not count in that step.
func stagesOf(invokes [][stagetime.NumPoints]int64) []stage {
	var out []stage
	for from := 0; from < stagetime.NumPoints; from++ {
		for to := from + 1; to < stagetime.NumPoints; to++ {
			var d []int64
			for _, inv := range invokes {
				if inv[from] == 0 || inv[to] == 0 {
					continue
				}
				skipped := false
				for k := from + 1; k < to; k++ {
					skipped = skipped || inv[k] != 0
				}
				if !skipped && inv[to] >= inv[from] {
					d = append(d, inv[to]-inv[from])
				}
			}
			// Only the points most invokes passed make a step: a point a
			// few invokes passed (a cold start's) does not split the others.
			if len(d) > len(invokes)/2 {
				slices.Sort(d)
				out = append(out, stage{from: from, to: to, p50: time.Duration(d[len(d)/2]), n: len(d)})
				break
			}
		}
	}
	return out
}

// printStages prints where each concurrency-1 measurement's time goes.
// The medians of the steps need not add up to the median invoke.
func printStages(w io.Writer, splits []cpuSplit) {
	fmt.Fprintf(w, "\nwhere a concurrency-1 invoke's time goes (internal/stagetime; the median of each step, over the invokes that passed both of its points)\n")
	for _, r := range splits {
		if len(r.stages) == 0 {
			continue
		}
		fmt.Fprintf(w, "  %s (%d invokes)\n", r.Name, len(r.stages))
		for _, s := range stagesOf(r.stages) {
			fmt.Fprintf(w, "    %-24s -> %-24s %8.1f us\n", stagetime.Names[s.from], stagetime.Names[s.to], float64(s.p50)/1e3)
		}
	}
}
