package main

// The sandbox fleet of `ember bench`: many sandboxes created at once, then
// idle, and what they cost the host.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// fleetResult is what benchFleet measures: n sandboxes of one function
// version created at once, then idle and warm (their runtimes waiting on
// /next), and Ember's memory for them.
type fleetResult struct {
	Sandboxes int
	// CreateSeconds is from the PutProvisionedConcurrencyConfig request
	// to the last sandbox ready; CreatedPerSecond is Sandboxes over it.
	CreateSeconds    float64
	CreatedPerSecond float64
	// Growth of Ember's process (this one: Ember in-process, the bench's
	// client idle meanwhile) with the n idle sandboxes, after a GC:
	// resident memory, live Go heap plus goroutine stacks, goroutines,
	// OS threads and open files.
	EmberRSSBytes, EmberHeapBytes           int64
	EmberRSSPerSandbox, EmberHeapPerSandbox int64
	GoroutinesPerSandbox, ThreadsPerSandbox float64
	FDsPerSandbox                           float64
	// The sandboxes' own processes, in total: resident memory (shared
	// pages counted in each) and proportional set size (shared pages
	// divided among the processes sharing them).
	FunctionRSSBytes, FunctionPSSBytes int64
	// FunctionThreads is the sandboxes' threads (tasks) in total: they
	// count against the host's pid_max.
	FunctionThreads int
	// HostUsedPerSandbox is the growth of the host's used memory
	// (MemTotal - MemAvailable) over n: Ember, the functions and the
	// kernel's share (namespaces, cgroups, page tables) together; noisy on
	// a shared machine.
	HostUsedPerSandbox int64
	// CPU time per sandbox, user and system: Ember's process from the
	// request to the last one ready (the bench's polling included), and
	// the sandboxes' own processes over their whole life (the init's
	// setup, the function's runtime start to its first /next, idling,
	// being killed), counted once they are reaped. Kernel threads' work
	// (RCU, cgroup release) is in neither. CPUBoundPerSecond is the
	// creation rate these allow on this machine's CPUs.
	EmberCPUPerSandboxMs, ProcessCPUPerSandboxMs float64
	// SpawnerCPUPerSandboxMs is the part of EmberCPUPerSandboxMs that is
	// the sandbox spawner's (the process that clones the inits: the
	// namespaces' creation).
	SpawnerCPUPerSandboxMs float64
	CPUBoundPerSecond      float64
	// FunctionStartAloneMs is the CPU time of the same function's start,
	// from exec to its first /next, as a plain child process of the
	// bench (no sandbox): the part of ProcessCPUPerSandboxMs that is the
	// function's own, which no platform can take away.
	FunctionStartAloneMs float64
	// DestroySeconds is from the DeleteProvisionedConcurrencyConfig
	// request until every one of the sandboxes' processes has gone.
	DestroySeconds float64
	// CreateFailure is the last failure Ember reported while creating
	// them ("" if none): a sandbox that failed is made again after a
	// delay, which the creation's wall time then includes.
	CreateFailure string `json:",omitempty"`
	// EarlierEnded counts the sandboxes of earlier measurements that ended
	// during this one: their whole lives' CPU is then in
	// ProcessCPUPerSandboxMs (reaped children's), which is too high.
	EarlierEnded int `json:",omitempty"`
}

// benchFleet creates n sandboxes at once through provisioned concurrency
// (a published version of the function name, the probe with 128 MB), times each one's
// readiness from the request, measures the memory of n idle warm
// sandboxes, then removes them and waits until their processes are gone.
//
// status is the Worker Manager's ProvisionedStatus.
func benchFleet(c *benchClient, host, name string, n int, status func(version string) (int, string)) (benchRow, fleetResult, error) {
	res := fleetResult{Sandboxes: n}
	b, err := c.do("POST", host, "/2015-03-31/functions/"+name+"/versions", []byte(`{}`), true, nil)
	if err != nil {
		return benchRow{}, res, err
	}
	var published struct{ FunctionArn string }
	if err := json.Unmarshal(b, &published); err != nil {
		return benchRow{}, res, err
	}
	// arn:aws:lambda:REGION:ACCOUNT:function:NAME:1; the version key is
	// ACCOUNT.NAME:1.
	arn := strings.Split(published.FunctionArn, ":")
	if len(arn) != 8 {
		return benchRow{}, res, fmt.Errorf("published version's ARN %q", published.FunctionArn)
	}
	version := arn[4] + "." + name + ":" + arn[7]
	pc := "/2019-09-30/functions/" + name + "/provisioned-concurrency?Qualifier=1"
	settle(c) // the warm runs' connections closed, before measuring memory
	before := takeMemSnapshot()
	body, _ := json.Marshal(map[string]int{"ProvisionedConcurrentExecutions": n})
	// The spawner's CPU is Ember's; it is read alone (a scan of every
	// child's threads at the end would add its own cost to Ember's).
	spawner := spawnerPID()
	spawner0 := processCPU(spawner)
	selfCPU, childCPU := cpuTime(syscall.RUSAGE_SELF), cpuTime(syscall.RUSAGE_CHILDREN)
	start := time.Now()
	if _, err := c.do("PUT", host, pc, body, true, nil); err != nil {
		return benchRow{}, res, err
	}
	// Each sandbox's readiness is when the allocated count first covers
	// it, polled in-process every 2 ms (polling the API that often would
	// cost Ember more CPU than the sandboxes it counts).
	ready := make([]time.Duration, 0, n)
	deadline := start.Add(4 * time.Minute)
	var reason string
	for len(ready) < n {
		allocated, failure := status(version)
		now := time.Since(start)
		for len(ready) < min(allocated, n) {
			ready = append(ready, now)
		}
		if failure != "" {
			reason = failure // Ember retries; say why if it never gets there
		}
		if len(ready) == n {
			break
		}
		if time.Now().After(deadline) {
			return benchRow{}, res, fmt.Errorf("%d of %d provisioned sandboxes ready after %v (last failure: %q)", len(ready), n, time.Since(start), reason)
		}
		time.Sleep(2 * time.Millisecond)
	}
	total := ready[n-1]
	res.CreateFailure = reason
	if b, err := c.do("GET", host, pc, nil, true, nil); err != nil || !bytes.Contains(b, []byte(`"READY"`)) {
		return benchRow{}, res, fmt.Errorf("all %d sandboxes allocated, but the configuration says %s %v", n, b, err)
	}
	selfSpent := cpuTime(syscall.RUSAGE_SELF) - selfCPU
	res.SpawnerCPUPerSandboxMs = max(processCPU(spawner)-spawner0, 0).Seconds() * 1000 / float64(n)
	res.EmberCPUPerSandboxMs = selfSpent.Seconds()*1000/float64(n) + res.SpawnerCPUPerSandboxMs
	res.CreateSeconds = total.Seconds()
	res.CreatedPerSecond = float64(n) / total.Seconds()
	row := summarize(fmt.Sprintf("Ember sandbox creation, %d at once (to k-th ready)", n), n, slices.Clone(ready), total)

	settle(c)
	after := takeMemSnapshot()
	res.EmberRSSBytes = after.rss - before.rss
	res.EmberHeapBytes = after.heap - before.heap
	res.EmberRSSPerSandbox = res.EmberRSSBytes / int64(n)
	res.EmberHeapPerSandbox = res.EmberHeapBytes / int64(n)
	res.GoroutinesPerSandbox = float64(after.goroutines-before.goroutines) / float64(n)
	res.ThreadsPerSandbox = float64(after.threads-before.threads) / float64(n)
	res.FDsPerSandbox = float64(after.fds-before.fds) / float64(n)
	res.HostUsedPerSandbox = (after.hostUsed - before.hostUsed) / int64(n)
	fleet := 0
	for pid := range after.children {
		if before.children[pid] {
			continue
		}
		fleet++
		rss, pss := processMemory(pid)
		res.FunctionRSSBytes += rss
		res.FunctionPSSBytes += pss
		if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid)); err == nil {
			res.FunctionThreads += int(procField(string(b), "Threads:"))
		}
	}
	if fleet != n {
		return row, res, fmt.Errorf("%d new sandbox processes for %d provisioned sandboxes", fleet, n)
	}

	// Remove them; wait until their processes are gone.
	t := time.Now()
	if _, err := c.do("DELETE", host, pc, nil, true, nil); err != nil {
		return row, res, err
	}
	for {
		left := 0
		for pid := range after.children {
			if !before.children[pid] && processAlive(pid) {
				left++
			}
		}
		if left == 0 {
			break
		}
		if time.Since(t) > 2*time.Minute {
			return row, res, fmt.Errorf("%d of %d sandboxes still running 2 minutes after their removal", left, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	res.DestroySeconds = time.Since(t).Seconds()
	res.ProcessCPUPerSandboxMs = (cpuTime(syscall.RUSAGE_CHILDREN) - childCPU).Seconds() * 1000 / float64(n)
	// The earlier rows' idle sandboxes must have lived through it: one
	// reaped meanwhile would add its whole life's CPU to the figure above.
	for pid := range before.children {
		if !processAlive(pid) {
			res.EarlierEnded++
		}
	}
	res.CPUBoundPerSecond = float64(runtime.NumCPU()) * 1000 / (res.EmberCPUPerSandboxMs + res.ProcessCPUPerSandboxMs)
	return row, res, nil
}

// settle closes the client's idle connections and waits (up to 2 s) until
// the server's goroutines for them have ended: the goroutine count holds
// for 100 ms.
func settle(c *benchClient) {
	c.http.CloseIdleConnections()
	last, stable := runtime.NumGoroutine(), 0
	for i := 0; i < 100 && stable < 5; i++ {
		time.Sleep(20 * time.Millisecond)
		if g := runtime.NumGoroutine(); g == last {
			stable++
		} else {
			last, stable = g, 0
		}
	}
}

// cpuTime is the user and system CPU time of this process or of its
// reaped children.
func cpuTime(who int) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(who, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// memSnapshot is this process's memory, after a full GC, and its children.
type memSnapshot struct {
	rss, heap                int64
	goroutines, threads, fds int
	hostUsed                 int64
	children                 map[int]bool
}

func takeMemSnapshot() memSnapshot {
	// sync.Pools keep their objects through one GC (the victim cache):
	// two GCs empty them, then the freed heap is handed back.
	runtime.GC()
	runtime.GC()
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	s := memSnapshot{heap: int64(ms.HeapAlloc + ms.StackInuse), goroutines: runtime.NumGoroutine(), children: map[int]bool{}}
	if b, err := os.ReadFile("/proc/self/status"); err == nil {
		s.rss = procField(string(b), "VmRSS:") << 10
		s.threads = int(procField(string(b), "Threads:"))
	}
	if fds, err := os.ReadDir("/proc/self/fd"); err == nil {
		s.fds = len(fds)
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		s.hostUsed = (procField(string(b), "MemTotal:") - procField(string(b), "MemAvailable:")) << 10
	}
	for _, pid := range childPIDs() {
		if !pooledInit(pid) {
			s.children[pid] = true
		}
	}
	return s
}

// pooledInit says whether pid is a sandbox init the sandbox manager keeps
// started ahead (sandbox.Config.InitPool): not a sandbox yet, and
// replaced as soon as one is taken.
func pooledInit(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cgroup")
	return err == nil && bytes.Contains(b, []byte("/_pool-"))
}

// procField is the number after key in a /proc file of "key: value" lines.
func procField(text, key string) int64 {
	i := strings.Index(text, key)
	if i < 0 {
		return 0
	}
	var v int64
	fmt.Sscanf(text[i+len(key):], "%d", &v)
	return v
}

// processMemory is a process's resident and proportional set sizes.
func processMemory(pid int) (rss, pss int64) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return 0, 0
	}
	return procField(string(b), "\nRss:") << 10, procField(string(b), "\nPss:") << 10
}

// processAlive says whether pid is still a process (not yet reaped).
func processAlive(pid int) bool {
	_, err := os.Stat(fmt.Sprintf("/proc/%d", pid))
	return err == nil
}

// printFleet prints the idle sandboxes' figures under the table.
func printFleet(w io.Writer, f fleetResult) {
	const mib = 1 << 20
	fmt.Fprintf(w, "\n%d idle warm sandboxes (provisioned concurrency, 128 MB each):\n", f.Sandboxes)
	fmt.Fprintf(w, "  created in %.2f s: %.0f sandboxes/s; removed in %.2f s\n", f.CreateSeconds, f.CreatedPerSecond, f.DestroySeconds)
	if f.EarlierEnded > 0 {
		fmt.Fprintf(w, "  (%d sandboxes of the earlier measurements ended meanwhile: the sandbox's processes' CPU below includes their lives)\n", f.EarlierEnded)
	}
	if f.CreateFailure != "" {
		fmt.Fprintf(w, "  (some failed and were made again after a delay; the last failure: %s)\n", f.CreateFailure)
	}
	fmt.Fprintf(w, "  CPU per sandbox: Ember %.2f ms (of which its spawner, cloning the inits into their namespaces, %.2f ms), the sandbox's processes %.2f ms: at most %.0f sandboxes/s on %d CPUs\n",
		f.EmberCPUPerSandboxMs, f.SpawnerCPUPerSandboxMs, f.ProcessCPUPerSandboxMs, f.CPUBoundPerSecond, runtime.NumCPU())
	if f.FunctionStartAloneMs > 0 {
		fmt.Fprintf(w, "  of which the function's own start (exec to first /next, outside a sandbox, measured alone): %.2f ms; the rest (the sandbox's set-up, the function's idling and end) %.2f ms\n",
			f.FunctionStartAloneMs, f.ProcessCPUPerSandboxMs-f.FunctionStartAloneMs)
	}
	fmt.Fprintf(w, "  Ember's own memory per sandbox: %.3f MiB RSS, %.3f MiB Go heap+stacks (total %.1f MiB RSS, %.1f MiB heap+stacks)\n",
		float64(f.EmberRSSPerSandbox)/mib, float64(f.EmberHeapPerSandbox)/mib, float64(f.EmberRSSBytes)/mib, float64(f.EmberHeapBytes)/mib)
	fmt.Fprintf(w, "  Ember per sandbox: %.1f goroutines, %.2f OS threads, %.1f open files\n", f.GoroutinesPerSandbox, f.ThreadsPerSandbox, f.FDsPerSandbox)
	fmt.Fprintf(w, "  function processes: %.1f MiB RSS in total (%.2f MiB each), %.1f MiB PSS in total (%.2f MiB each), %d threads\n",
		float64(f.FunctionRSSBytes)/mib, float64(f.FunctionRSSBytes)/mib/float64(f.Sandboxes),
		float64(f.FunctionPSSBytes)/mib, float64(f.FunctionPSSBytes)/mib/float64(f.Sandboxes), f.FunctionThreads)
	fmt.Fprintf(w, "  host memory in use per sandbox (everything, noisy): %.2f MiB\n", float64(f.HostUsedPerSandbox)/mib)
}
