package main

// The crash proof of the asynchronous invocation issue (issue 7): kill -9
// `ember serve` while thousands of events are being accepted, queued and
// run; start it again on the same data directory; every accepted event
// reaches an outcome, and nothing of the killed process is left.

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"
)

// emberProcess is `ember serve` run as a process of its own (this test
// binary re-executed as ember).
type emberProcess struct {
	*emberServer // url and data dir; stop does nothing (kill the process)
	cmd          *exec.Cmd
	stderr       *syncBuffer
	exited       chan struct{}
}

// startEmberProcess runs `ember serve` on dir with extra environment and
// waits until it serves. The process is killed when the test ends.
func startEmberProcess(t *testing.T, dir string, env ...string) *emberProcess {
	t.Helper()
	cmd := exec.Command(os.Args[0], "serve", "--listen", "127.0.0.1:0", "--data-dir", dir)
	cmd.Env = append(append(os.Environ(), "EMBER_TEST_AS_MAIN=1"), env...)
	return runServeProcess(t, cmd, dir, false)
}

// runServeProcess starts cmd, an `ember serve` on dir, and waits until it
// serves. When the test ends the process is killed, or with graceful sent
// SIGTERM, and must then exit 0 within a minute.
func runServeProcess(t *testing.T, cmd *exec.Cmd, dir string, graceful bool) *emberProcess {
	t.Helper()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &emberProcess{cmd: cmd, stderr: &syncBuffer{}, exited: make(chan struct{})}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	urls := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		re := regexp.MustCompile(`serving the Lambda API on (http://\S+)`)
		for sc.Scan() {
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				urls <- m[1]
			}
		}
		_ = cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		if !graceful {
			_ = cmd.Process.Kill()
			<-p.exited
			return
		}
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.exited:
			if code := cmd.ProcessState.ExitCode(); code != 0 {
				t.Errorf("ember serve exited %d:\n%s", code, p.stderr.String())
			}
		case <-time.After(60 * time.Second):
			_ = cmd.Process.Kill()
			<-p.exited
			t.Error("ember serve did not stop on SIGTERM")
		}
	})
	select {
	case url := <-urls:
		p.emberServer = &emberServer{t: t, url: url, dataDir: dir}
	case <-p.exited:
		t.Fatalf("ember serve exited: %s", p.stderr.String())
	case <-time.After(60 * time.Second):
		t.Fatal("ember serve did not start")
	}
	return p
}

// descendants lists the live processes below pid.
func descendants(pid int) []int {
	parent := map[int]int{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if st, ppid, ok := procState(p); ok && st != "Z" {
			parent[p] = ppid
		}
	}
	var out []int
	for p := range parent {
		for q := parent[p]; q > 1; q = parent[q] {
			if q == pid {
				out = append(out, p)
				break
			}
		}
	}
	return out
}

// procState reads a process's state and parent.
func procState(pid int) (state string, ppid int, ok bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return "", 0, false
	}
	i := strings.LastIndexByte(string(b), ')')
	f := strings.Fields(string(b[i+1:]))
	if i < 0 || len(f) < 2 {
		return "", 0, false
	}
	ppid, _ = strconv.Atoi(f[1])
	return f[0], ppid, true
}

// cgroupsNamed lists the cgroup directories of that name.
func cgroupsNamed(name string) []string {
	var out []string
	_ = filepath.WalkDir("/sys/fs/cgroup", func(path string, d os.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil
		}
		if d.Name() == name {
			out = append(out, path)
			return filepath.SkipDir
		}
		if strings.Count(path, "/") > 8 {
			return filepath.SkipDir
		}
		return nil
	})
	return out
}

// kill -9 `ember serve` while 2,000 events are being accepted, queued and
// run by a function with a reserved concurrency of 8 (so that most wait in
// the queue), then start Ember again on the same data directory. Every
// event that was answered 202 reaches an outcome (its OnSuccess or
// OnFailure record), and the killed process's sandboxes and cgroups are
// gone. Outcomes are observed through a destination function whose
// reserved concurrency is 0 until the restart, so that the records wait
// durably in the queue through the crash (function logs are stored every
// 200 ms: the last lines before a kill -9 may be lost).
func TestAsyncKill9LosesNoEvent(t *testing.T) {
	const scale = "0.02" // retries after 1.2 s, throttle backoff up to 6 s
	t.Setenv("EMBER_ASYNC_TIME_SCALE", scale)
	dir := t.TempDir()
	first := startEmberProcess(t, dir, "EMBER_ASYNC_TIME_SCALE="+scale)
	c := first.client(first.creds("default"))
	ctx := context.Background()
	if _, err := c.CreateFunction(ctx, createInput("work", flaky(t))); err != nil {
		t.Fatal(err)
	}
	sinkARN := createRecorder(t, c, "sink")
	for name, n := range map[string]int32{"work": 8, "sink": 0} {
		if _, err := c.PutFunctionConcurrency(ctx, &lambda.PutFunctionConcurrencyInput{
			FunctionName: aws.String(name), ReservedConcurrentExecutions: aws.Int32(n),
		}); err != nil {
			t.Fatal(err)
		}
	}
	const retries = 1
	putConfig(t, c, &lambda.PutFunctionEventInvokeConfigInput{
		FunctionName: aws.String("work"), MaximumRetryAttempts: aws.Int32(retries),
		DestinationConfig: destinations(sinkARN, sinkARN),
	})

	// Send 2,000 events, 16 at a time; kill -9 Ember once 1,600 are
	// accepted. Every 202 is an accepted event; a request that got no
	// answer may or may not have been stored.
	const n, killAt, senders = 2000, 1600, 16
	var (
		mu         sync.Mutex
		accepted   = map[int]string{} // event id -> request id
		unanswered []int
		killed     = make(chan struct{})
		killOnce   sync.Once
		killedPID  = first.cmd.Process.Pid
		sandboxes  []int
		depth      float64
	)
	kill := func() {
		killOnce.Do(func() {
			sandboxes = descendants(killedPID)
			depth = scrapeMetrics(t, first.emberServer, "")["ember_async_queue_depth"]
			if err := first.cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Errorf("kill -9: %v", err)
			}
			close(killed)
		})
	}
	payload := func(id int) []byte {
		b, _ := json.Marshal(flakyEvent{ID: id, MS: 5})
		return b
	}
	send := func(c *lambda.Client, id int) (string, error) {
		out, err := c.Invoke(ctx, &lambda.InvokeInput{
			FunctionName: aws.String("work"), Payload: payload(id), InvocationType: types.InvocationTypeEvent,
		})
		if err != nil {
			return "", err
		}
		if out.StatusCode != 202 {
			t.Errorf("event %d answered %d", id, out.StatusCode)
		}
		return requestIDOf(t, out), nil
	}
	// sendAll sends the events ids, 16 at a time; killAfter (if set) says
	// when to kill the first Ember and stop sending.
	sendAll := func(c *lambda.Client, ids []int, killAfter int) {
		next := make(chan int, len(ids))
		for _, id := range ids {
			next <- id
		}
		close(next)
		var wg sync.WaitGroup
		for range senders {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for id := range next {
					if killAfter > 0 {
						select {
						case <-killed:
							return // the rest are sent to the next Ember
						default:
						}
					}
					rid, err := send(c, id)
					mu.Lock()
					if err != nil {
						unanswered = append(unanswered, id)
					} else {
						accepted[id] = rid
					}
					enough := len(accepted) >= killAfter
					mu.Unlock()
					if killAfter > 0 && enough {
						kill()
					}
				}
			}()
		}
		wg.Wait()
	}
	all := make([]int, n)
	for i := range all {
		all[i] = i
	}
	start := time.Now()
	sendAll(c, all, killAt)
	select {
	case <-killed:
	default:
		t.Fatalf("all %d events were sent before the kill", n)
	}
	<-first.exited
	t.Logf("killed Ember (pid %d) %v after the first event, with %d events accepted, %d unanswered, %d queued, %d sandbox processes",
		killedPID, time.Since(start).Round(time.Millisecond), len(accepted), len(unanswered), int(depth), len(sandboxes))
	if len(sandboxes) == 0 {
		t.Fatal("the killed Ember had no sandbox processes")
	}
	killedCgroups := cgroupsNamed("ember-" + strconv.Itoa(killedPID))
	if len(killedCgroups) == 0 {
		t.Fatal("the killed Ember's sandbox cgroups were not found")
	}
	// Its sandboxes die with it (their parent-death signal).
	pollUntil(t, "the killed Ember's sandboxes to die", 10*time.Second, 20*time.Millisecond, func() bool {
		for _, p := range sandboxes {
			if st, _, ok := procState(p); ok && st != "Z" {
				return false
			}
		}
		return true
	})
	oldWorkers, _ := filepath.Glob(filepath.Join(dir, "worker-*"))
	if len(oldWorkers) != 1 {
		t.Fatalf("worker directories of the killed Ember: %v", oldWorkers)
	}

	// A new Ember on the same data directory.
	restart := time.Now()
	srv := startEmber(t, dir)
	t.Logf("the new Ember serves after %v", time.Since(restart).Round(time.Millisecond))
	c = srv.client(srv.creds("default"))
	if left := cgroupsNamed("ember-" + strconv.Itoa(killedPID)); len(left) > 0 {
		t.Errorf("the killed Ember's cgroups are left after the restart: %v", left)
	}
	// The destination opens (to 8 sandboxes: the machine has 2 cores).
	if _, err := c.PutFunctionConcurrency(ctx, &lambda.PutFunctionConcurrencyInput{
		FunctionName: aws.String("sink"), ReservedConcurrentExecutions: aws.Int32(8),
	}); err != nil {
		t.Fatal(err)
	}
	// The events not sent yet go to the new Ember.
	var rest []int
	for id := range n {
		mu.Lock()
		_, ok := accepted[id]
		mu.Unlock()
		if !ok && !slices.Contains(unanswered, id) {
			rest = append(rest, id)
		}
	}
	before := len(unanswered)
	sendAll(c, rest, 0)
	if len(unanswered) != before {
		t.Fatalf("events sent after the restart got no answer: %v", unanswered[before:])
	}
	t.Logf("restarted, and sent the %d events left, %v after the first event", len(rest), time.Since(start).Round(time.Millisecond))

	var recs map[string][]invocationRecord
	pollUntil(t, "every accepted event's outcome", 150*time.Second, time.Second, func() bool {
		recs = recordsByRequest(t, srv, "sink")
		for _, rid := range accepted {
			if len(recs[rid]) == 0 {
				return false
			}
		}
		return true
	})
	t.Logf("all %d accepted events reached an outcome %v after the first event", len(accepted), time.Since(start).Round(time.Millisecond))

	// Every outcome is the right one, once.
	duplicateRecords := 0
	byID := map[string]int{}
	for id, rid := range accepted {
		byID[rid] = id
		rs := recs[rid]
		duplicateRecords += len(rs) - 1
		for _, r := range rs {
			rc := r.RequestContext
			want := "Success"
			if id%5 == 0 {
				want = "RetriesExhausted"
			}
			if string(r.RequestPayload) != string(payload(id)) || rc.Condition != want ||
				(want == "RetriesExhausted") != (rc.ApproximateInvokeCount == retries+1) ||
				(want == "Success" && rc.ApproximateInvokeCount != 1) {
				t.Errorf("event %d: record %+v %s", id, rc, r.RequestPayload)
			}
		}
	}
	// Records of events that got no answer (stored, or not, as the kill
	// struck): nothing else reached the destination.
	outcomesUnanswered := 0
	for rid, rs := range recs {
		if _, ok := byID[rid]; ok {
			continue
		}
		var ev flakyEvent
		_ = json.Unmarshal(rs[0].RequestPayload, &ev)
		if !slices.Contains(unanswered, ev.ID) {
			t.Errorf("a record of an event that was never sent: %+v %s", rs[0].RequestContext, rs[0].RequestPayload)
		}
		outcomesUnanswered++
	}
	// Duplicate invocations: START lines beyond the attempts each event
	// needed (a lower bound: the killed Ember's last log lines may be
	// lost). What runs again: the event stream's deliveries in flight at
	// the kill (at most asyncPollers), and the events of the groups that
	// had one running (internal/async runs a group of accepted events
	// from the inbox, and acks it once all of its events are done): at
	// most 8 running (the reserved concurrency), in groups of at most
	// one event per sender.
	log := readAttempts(t, srv, "work")
	duplicateRuns := 0
	for id, rid := range accepted {
		want := 1
		if id%5 == 0 {
			want = retries + 1
		}
		duplicateRuns += max(log.starts[rid]-want, 0)
	}
	t.Logf("duplicates: %d outcome records, %d function invocations (seen in its log); %d of %d unanswered events reached an outcome",
		duplicateRecords, duplicateRuns, outcomesUnanswered, len(unanswered))
	if duplicateRecords > 0 {
		t.Errorf("%d duplicate outcome records: the destination's message id should make them one", duplicateRecords)
	}
	if bound := asyncPollers + 8*senders; duplicateRuns > bound {
		t.Errorf("%d duplicate invocations; at most %d deliveries and groups' events were in flight at the kill", duplicateRuns, bound)
	}

	// Nothing of the killed Ember is left: no process (checked above), no
	// cgroup, no mount, and the new Ember removed its worker directory.
	if left := cgroupsNamed("ember-" + strconv.Itoa(killedPID)); len(left) > 0 {
		t.Errorf("the killed Ember's cgroups are left: %v", left)
	}
	if mi, _ := os.ReadFile("/proc/self/mountinfo"); strings.Contains(string(mi), dir) {
		t.Errorf("mounts under the data directory are left:\n%s", mi)
	}
	for _, w := range oldWorkers {
		if _, err := os.Stat(w); !os.IsNotExist(err) {
			t.Errorf("the killed Ember's worker directory %s is left after the restart (%v)", w, err)
		}
	}
}

// asyncPollers is how many events one Ember's pollers hold at once
// (internal/async's default concurrency).
const asyncPollers = 64
