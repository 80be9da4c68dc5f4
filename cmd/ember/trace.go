package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/emberfn/ember/internal/workermanager"
)

// `ember trace gen` writes a synthetic invocation trace (periodic, bursty
// and rare functions; workermanager.GenerateTrace) and `ember trace replay
// FILE` replays one against a fixed keep-alive and against the hybrid
// histogram policy Ember runs, printing each one's cold-start fraction and
// warm idle sandbox-seconds (workermanager.Replay). The figures of
// docs/performance.md come from:
//
//	ember trace gen --out trace.json && ember trace replay trace.json

const traceUsage = `usage:
  ember trace gen [--out FILE] [--seed 1] [--length 24h] [--periodic 40] [--bursty 30] [--rare 30]
  ember trace replay FILE [--keep-alive 10m] [--json]
`

// traceFormat names the trace file's format.
const traceFormat = "ember-trace/1"

// traceFile is a trace as written to disk. Times are nanoseconds from the
// trace's start; each invocation is [function index, start, duration].
type traceFile struct {
	Format      string          `json:"format"`
	Start       time.Time       `json:"start"`
	LengthNS    int64           `json:"length_ns"`
	Functions   []traceFunction `json:"functions"`
	Invocations [][3]int64      `json:"invocations"`
}

type traceFunction struct {
	Name   string `json:"name"`
	Class  string `json:"class"` // periodic, bursty or rare
	MeanNS int64  `json:"mean_ns"`
}

func runTrace(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, traceUsage)
		return flag.ErrHelp
	}
	switch args[0] {
	case "gen":
		return runTraceGen(args[1:], stdout, stderr)
	case "replay":
		return runTraceReplay(args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, traceUsage)
		return nil
	}
	fmt.Fprint(stderr, traceUsage)
	return fmt.Errorf("trace: unknown command %q", args[0])
}

func runTraceGen(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("trace gen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	def := workermanager.DefaultTraceConfig()
	out := fs.String("out", "-", "file to write the trace to (-: standard output)")
	fs.Uint64Var(&def.Seed, "seed", def.Seed, "random seed (the same seed gives the same trace)")
	fs.DurationVar(&def.Length, "length", def.Length, "length of the trace")
	fs.IntVar(&def.Periodic, "periodic", def.Periodic, "periodic functions (timers)")
	fs.IntVar(&def.Bursty, "bursty", def.Bursty, "bursty functions")
	fs.IntVar(&def.Rare, "rare", def.Rare, "rare functions")
	pos, err := parseCommand(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return fmt.Errorf("trace gen: unexpected argument %q", pos[0])
	}
	if def.Length <= 0 || def.Periodic < 0 || def.Bursty < 0 || def.Rare < 0 || def.Periodic+def.Bursty+def.Rare == 0 {
		return errors.New("trace gen: want a positive --length and at least one function")
	}
	tr := workermanager.GenerateTrace(def)
	f := traceFile{Format: traceFormat, Start: tr.Start, LengthNS: int64(tr.Length),
		Functions: make([]traceFunction, len(tr.Functions)), Invocations: make([][3]int64, len(tr.Invocations))}
	for i, fn := range tr.Functions {
		f.Functions[i] = traceFunction{Name: fn.Name, Class: fn.Class.String(), MeanNS: int64(fn.Mean)}
	}
	for i, inv := range tr.Invocations {
		f.Invocations[i] = [3]int64{int64(inv.Fn), int64(inv.At), int64(inv.Duration)}
	}
	w := stdout
	var file *os.File
	if *out != "-" {
		if file, err = os.Create(*out); err != nil {
			return err
		}
		defer file.Close()
		w = file
	}
	bw := bufio.NewWriter(w)
	if err := json.NewEncoder(bw).Encode(f); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	if file != nil {
		if err := file.Close(); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "wrote %s: %d functions, %d invocations over %v\n", *out, len(tr.Functions), len(tr.Invocations), tr.Length)
	}
	return nil
}

// readTrace reads and checks a trace file.
func readTrace(path string) (*workermanager.Trace, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var f traceFile
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if f.Format != traceFormat {
		return nil, fmt.Errorf("%s: format %q, want %q (written by ember trace gen)", path, f.Format, traceFormat)
	}
	classes := map[string]workermanager.TraceClass{}
	for _, c := range []workermanager.TraceClass{workermanager.ClassPeriodic, workermanager.ClassBursty, workermanager.ClassRare} {
		classes[c.String()] = c
	}
	tr := &workermanager.Trace{Start: f.Start, Length: time.Duration(f.LengthNS)}
	for _, fn := range f.Functions {
		c, ok := classes[fn.Class]
		if !ok {
			return nil, fmt.Errorf("%s: function %s: class %q", path, fn.Name, fn.Class)
		}
		tr.Functions = append(tr.Functions, workermanager.TraceFunction{Name: fn.Name, Class: c, Mean: time.Duration(fn.MeanNS)})
	}
	var last int64
	for i, inv := range f.Invocations {
		if inv[0] < 0 || inv[0] >= int64(len(tr.Functions)) || inv[1] < last || inv[2] < 0 {
			return nil, fmt.Errorf("%s: invocation %d %v: want [function index, start, duration] in order of start", path, i, inv)
		}
		last = inv[1]
		tr.Invocations = append(tr.Invocations, workermanager.TraceInvocation{Fn: int(inv[0]), At: time.Duration(inv[1]), Duration: time.Duration(inv[2])})
	}
	return tr, nil
}

// replayReport is `ember trace replay --json`'s answer.
type replayReport struct {
	Functions   int            `json:"functions"`
	Invocations int            `json:"invocations"`
	LengthS     float64        `json:"length_seconds"`
	Policies    []replayPolicy `json:"policies"`
}

type replayPolicy struct {
	Name               string                   `json:"name"`
	Policy             string                   `json:"policy"` // fixed or hybrid
	ColdStarts         int                      `json:"cold_starts"`
	ColdStartFraction  float64                  `json:"cold_start_fraction"`
	IdleSandboxSeconds float64                  `json:"idle_sandbox_seconds"`
	Prewarms           int                      `json:"prewarms"`
	WastedPrewarms     int                      `json:"wasted_prewarms"`
	ByClass            map[string]replayByClass `json:"by_class"`
}

type replayByClass struct {
	Invocations        int     `json:"invocations"`
	ColdStartFraction  float64 `json:"cold_start_fraction"`
	IdleSandboxSeconds float64 `json:"idle_sandbox_seconds"`
}

func runTraceReplay(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("trace replay", flag.ContinueOnError)
	fs.SetOutput(stderr)
	keepAlive := fs.Duration("keep-alive", 10*time.Minute, "the fixed keep-alive, also the hybrid policy's fallback (as ember serve --keep-alive)")
	asJSON := fs.Bool("json", false, "print JSON, for scripts")
	pos, err := parseCommand(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		fmt.Fprint(stderr, traceUsage)
		return errors.New("trace replay: want one trace file")
	}
	if *keepAlive <= 0 {
		return errors.New("trace replay: --keep-alive must be positive")
	}
	tr, err := readTrace(pos[0])
	if err != nil {
		return err
	}
	hc := workermanager.DefaultHybridConfig()
	hc.Fallback = *keepAlive
	hybrid, err := workermanager.NewHybridPolicy(hc)
	if err != nil {
		return err
	}
	results := []workermanager.ReplayResult{
		workermanager.Replay(tr, workermanager.FixedPolicy{KeepAlive: *keepAlive}, workermanager.ReplayOptions{Name: fmt.Sprintf("fixed keep-alive %v", *keepAlive)}),
		workermanager.Replay(tr, hybrid, workermanager.ReplayOptions{Name: fmt.Sprintf("hybrid histogram (fallback %v)", *keepAlive)}),
	}
	if !*asJSON {
		fmt.Fprintf(stdout, "trace %s: %d functions, %d invocations over %v\n\n%s", pos[0], len(tr.Functions), len(tr.Invocations), tr.Length,
			workermanager.ResultTable(results...))
		return nil
	}
	rep := replayReport{Functions: len(tr.Functions), Invocations: len(tr.Invocations), LengthS: tr.Length.Seconds()}
	for i, r := range results {
		p := replayPolicy{Name: r.Name, Policy: []string{"fixed", "hybrid"}[i], ColdStarts: r.ColdStarts,
			ColdStartFraction: r.ColdFraction(), IdleSandboxSeconds: r.IdleSeconds,
			Prewarms: r.Prewarms, WastedPrewarms: r.WastedPrewarms, ByClass: map[string]replayByClass{}}
		for c, s := range r.ByClass {
			p.ByClass[workermanager.TraceClass(c).String()] = replayByClass{Invocations: s.Invocations,
				ColdStartFraction: s.ColdFraction(), IdleSandboxSeconds: s.IdleSeconds}
		}
		rep.Policies = append(rep.Policies, p)
	}
	return printJSON(stdout, rep)
}
