package main

import (
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/emberfn/ember/internal/stagetime"
)

// stageRow is one concurrency-1 measurement's invokes as internal/stagetime
// recorded them (a build with -tags stagetime; none otherwise).
type stageRow struct {
	name    string
	invokes [][stagetime.NumPoints]int64
}

// stage is the median time from one point an invoke passes to the next one
// it passes.
type stage struct {
	from, to int
	p50      time.Duration
	n        int
}

// stagesOf returns the median of each step between consecutive points,
// over the invokes that passed both (and none between them).
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
				if !skipped {
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
func printStages(w io.Writer, rows []stageRow) {
	fmt.Fprintf(w, "\nwhere a concurrency-1 invoke's time goes (internal/stagetime; the median of each step, over the invokes that passed both of its points)\n")
	for _, r := range rows {
		fmt.Fprintf(w, "  %s (%d invokes)\n", r.name, len(r.invokes))
		for _, s := range stagesOf(r.invokes) {
			fmt.Fprintf(w, "    %-24s -> %-24s %8.1f us\n", stagetime.Names[s.from], stagetime.Names[s.to], float64(s.p50)/1e3)
		}
	}
}
