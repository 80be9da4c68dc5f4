package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/emberfn/ember/internal/runtimeapi"
	"github.com/emberfn/ember/internal/sandbox"
	"github.com/emberfn/ember/internal/stagetime"
)

// This file measures where a warm invoke's CPU goes, so that the bench can
// say what bounds the warm rows in the same run: the bench's own process
// (the client, and the server it measures: Ember or the echo) and the
// function's processes, per request; and the aws-lambda-go runtime's round
// trip alone, with Ember's Runtime API server and no Front End or sandbox.

// cpuSplit is the CPU time one measurement used, per request.
type cpuSplit struct {
	Name        string
	Concurrency int
	// ProcessMs is this process's CPU (the client, and Ember or the echo
	// server) per request; FunctionMs the function's processes' (its
	// sandbox's PID 1, the runtime, and its threads) per request.
	ProcessMs  float64
	FunctionMs float64
	// stages are the invokes' steps as internal/stagetime recorded them
	// (concurrency 1, a build with -tags stagetime; else none).
	stages [][stagetime.NumPoints]int64
}

// cpuMark is a reading of Ember's CPU (this process's and its sandbox
// spawner's) and of its other children's (running ones included, unlike
// RUSAGE_CHILDREN).
type cpuMark struct{ self, children time.Duration }

func markCPU() cpuMark {
	own, spawner := liveChildrenCPU()
	return cpuMark{self: cpuTime(syscall.RUSAGE_SELF) + spawner, children: own}
}

// splitSince is the CPU used since m over n requests.
func splitSince(m cpuMark, name string, conc, n int) cpuSplit {
	now := markCPU()
	per := func(d time.Duration) float64 { return d.Seconds() * 1000 / float64(n) }
	return cpuSplit{Name: name, Concurrency: conc, ProcessMs: per(now.self - m.self),
		FunctionMs: per(max(now.children-m.children, 0))}
}

// liveChildrenCPU is the CPU time, so far, of this process's living child
// processes and their threads: each thread's time on a CPU from
// /proc/PID/task/TID/schedstat (nanoseconds, where /proc/PID/stat counts
// in ticks of 10 ms). A sandbox's program is PID 1 of its namespace and a
// child of Ember, which runs in this process. Threads that have ended
// are not counted: a Go program's threads live as long as it does. The
// sandbox manager's spawner (which clones the sandboxes' inits: Ember's
// own work) is counted apart, in spawner.
func liveChildrenCPU() (sandboxes, spawner time.Duration) {
	for _, pid := range childPIDs() {
		if isSpawner(pid) {
			spawner += processCPU(pid)
		} else {
			sandboxes += processCPU(pid)
		}
	}
	return sandboxes, spawner
}

// spawnerPID is the sandbox manager's spawner among this process's
// children, or 0.
func spawnerPID() int {
	for _, pid := range childPIDs() {
		if isSpawner(pid) {
			return pid
		}
	}
	return 0
}

// processCPU is the CPU time of pid's living threads (0 for 0).
func processCPU(pid int) time.Duration {
	var sum time.Duration
	if pid == 0 {
		return 0
	}
	dir := "/proc/" + strconv.Itoa(pid) + "/task/"
	tasks, _ := os.ReadDir(dir)
	for _, t := range tasks {
		b, err := os.ReadFile(dir + t.Name() + "/schedstat")
		if err != nil {
			continue
		}
		if f := strings.Fields(string(b)); len(f) > 0 {
			ns, _ := strconv.ParseInt(f[0], 10, 64)
			sum += time.Duration(ns)
		}
	}
	return sum
}

// isSpawner says whether pid is the sandbox manager's spawner: its
// command line, in this process's PID namespace (an init it forked has
// the same command line until its exec, in a PID namespace of its own).
func isSpawner(pid int) bool {
	b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if !bytes.HasPrefix(b, []byte(sandbox.SpawnerArg0+"\x00")) {
		return false
	}
	own, err1 := os.Readlink("/proc/self/ns/pid")
	its, err2 := os.Readlink("/proc/" + strconv.Itoa(pid) + "/ns/pid")
	return err1 == nil && err2 == nil && own == its
}

// childPIDs lists this process's living child processes (from /proc).
func childPIDs() []int {
	self := os.Getpid()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var pids []int
	for _, e := range ents {
		if pid, err := strconv.Atoi(e.Name()); err == nil && pid != self && parentOf(pid) == self {
			pids = append(pids, pid)
		}
	}
	return pids
}

// parentOf is the parent PID of pid from /proc/PID/stat, or -1.
func parentOf(pid int) int {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return -1
	}
	// "pid (comm) state ppid ...": comm may hold spaces and parentheses.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return -1
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 2 {
		return -1
	}
	ppid, err := strconv.Atoi(f[1])
	if err != nil {
		return -1
	}
	return ppid
}

// benchRuntimeAlone measures the aws-lambda-go runtime's round trip
// alone: Ember's Runtime API server (internal/runtimeapi) and the probe
// function's process, started directly (no sandbox, no Front End, no
// Worker), one invocation at a time, each from the server handing the
// event to the runtime's /next to the runtime's /response read. This is
// the function's part of a warm invoke, which no platform serving this
// runtime can take away. The process gets GOMAXPROCS=1, as Ember gives a
// 128 MB function.
func benchRuntimeAlone(ctx context.Context, bootstrap string, n int) (benchRow, cpuSplit, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return benchRow{}, cpuSplit{}, err
	}
	srv := runtimeapi.New(runtimeapi.Config{FunctionARN: "arn:aws:lambda:us-east-1:000000000000:function:alone"})
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	defer func() { srv.Close(); <-served }()
	cmd := exec.CommandContext(ctx, bootstrap)
	cmd.Dir = filepath.Dir(bootstrap)
	cmd.Env = []string{"AWS_LAMBDA_RUNTIME_API=" + ln.Addr().String(), "GOMAXPROCS=1", "_HANDLER=bootstrap",
		"AWS_LAMBDA_FUNCTION_NAME=alone", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE=128", "AWS_LAMBDA_FUNCTION_VERSION=$LATEST"}
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	if err := cmd.Start(); err != nil {
		return benchRow{}, cpuSplit{}, err
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	ictx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := srv.WaitInit(ictx); err != nil {
		return benchRow{}, cpuSplit{}, fmt.Errorf("the probe's runtime did not start: %w", err)
	}
	payload := []byte(`{"hello":"world"}`)
	var ids [64]string
	for i := range ids {
		ids[i] = "alone-" + strconv.Itoa(i)
	}
	i := 0
	invoke := func() error {
		i++
		// Invoke waits for the answer or its context: bounded, should the
		// probe die.
		ictx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		resp, err := srv.Invoke(ictx, &runtimeapi.Invocation{RequestID: ids[i%len(ids)], Payload: payload,
			Deadline: time.Now().Add(time.Minute)})
		if err != nil {
			return err
		}
		if resp.FunctionError != "" || !bytes.Equal(resp.Payload, payload) {
			return fmt.Errorf("the probe answered %q (%s)", resp.Payload, resp.FunctionError)
		}
		return nil
	}
	for range 4 { // warm-up, as measure does at concurrency 1
		if err := invoke(); err != nil {
			return benchRow{}, cpuSplit{}, err
		}
	}
	m := markCPU()
	lat, wall, err := measureWarm(n, 1, 0, invoke)
	if err != nil {
		return benchRow{}, cpuSplit{}, err
	}
	return summarize(aloneName, 1, lat, wall), splitSince(m, aloneName, 1, n), nil
}

// printSplits prints the CPU per request of the measurements in splits,
// and what the function's own part allows: at concurrency 8 the throughput
// of the machine's CPUs if Ember cost nothing, and at concurrency 1 the
// least latency of an invoke, one client round trip (the floor) and the
// runtime's round trip alone.
func printSplits(w io.Writer, splits []cpuSplit, rows []benchRow) {
	if len(splits) == 0 {
		return
	}
	fmt.Fprintf(w, "\nCPU per request (ms): this process (the client, and Ember or the echo server) + the function's processes\n")
	for _, s := range splits {
		fmt.Fprintf(w, "  %-60s %3d  %.3f + %.3f = %.3f\n", s.Name, s.Concurrency, s.ProcessMs, s.FunctionMs, s.ProcessMs+s.FunctionMs)
	}
	find := func(name string, conc int) (benchRow, cpuSplit) {
		var r benchRow
		var c cpuSplit
		for _, x := range rows {
			if x.Name == name && x.Concurrency == conc {
				r = x
			}
		}
		for _, x := range splits {
			if x.Name == name && x.Concurrency == conc {
				c = x
			}
		}
		return r, c
	}
	echo8, echo8CPU := find(floorName, 8)
	_, warm8 := find(warmName, 8)
	if echo8.PerSecond > 0 && warm8.FunctionMs > 0 {
		cpus := float64(runtime.NumCPU())
		alone := cpus * 1000 / warm8.FunctionMs
		withEcho := cpus * 1000 / (warm8.FunctionMs + echo8CPU.ProcessMs)
		fmt.Fprintf(w, "  at concurrency 8 the function's processes alone allow at most %.0f invokes/s on %d CPUs (%.0f%% of the echo's %.0f req/s); with the echo's own CPU per request added (a client, and a server that does nothing), %.0f/s (%.0f%%)\n",
			alone, runtime.NumCPU(), 100*alone/echo8.PerSecond, echo8.PerSecond, withEcho, 100*withEcho/echo8.PerSecond)
	}
	floor1, _ := find(floorName, 1)
	alone1, _ := find(aloneName, 1)
	if floor1.P50 > 0 && alone1.P50 > 0 {
		least := floor1.P50 + alone1.P50
		fmt.Fprintf(w, "  at concurrency 1 an invoke takes at least one client round trip and the runtime's: p50 %s + %s = %s, %.1fx the floor\n",
			us(floor1.P50), us(alone1.P50), us(least), float64(least)/float64(floor1.P50))
	}
}

// functionStartAlone is the CPU time (user and system) of the function at
// bootstrap starting up to its first /next, as a plain child process (no
// sandbox), averaged over n starts: a listener stands for the Runtime API,
// and the process is killed once its first request line has arrived.
func functionStartAlone(ctx context.Context, bootstrap string, n int) (time.Duration, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	var sum time.Duration
	for range n {
		cmd := exec.CommandContext(ctx, bootstrap)
		cmd.Dir = filepath.Dir(bootstrap)
		cmd.Env = []string{"AWS_LAMBDA_RUNTIME_API=" + ln.Addr().String(), "GOMAXPROCS=1", "_HANDLER=bootstrap"}
		cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
		if err := cmd.Start(); err != nil {
			return 0, err
		}
		err := firstLine(ln, 10*time.Second)
		cmd.Process.Kill()
		cmd.Wait()
		if err != nil {
			return 0, fmt.Errorf("the function's first /next: %w", err)
		}
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			sum += time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
		}
	}
	return sum / time.Duration(n), nil
}

// firstLine accepts one connection on ln and reads its first line.
func firstLine(ln net.Listener, timeout time.Duration) error {
	type deadliner interface{ SetDeadline(time.Time) error }
	if d, ok := ln.(deadliner); ok {
		d.SetDeadline(time.Now().Add(timeout))
	}
	c, err := ln.Accept()
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(timeout))
	var b [1]byte
	for {
		if _, err := c.Read(b[:]); err != nil {
			return err
		}
		if b[0] == '\n' {
			return nil
		}
	}
}
