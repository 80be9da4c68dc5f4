package metrics_test

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emberfn/ember/internal/metrics"
)

// scrape fetches the metrics through the handler, from addr.
func scrape(t *testing.T, h http.Handler, remote, authz string) (int, string) {
	t.Helper()
	r := httptest.NewRequest("GET", "/metrics", nil)
	r.RemoteAddr = remote
	if authz != "" {
		r.Header.Set("Authorization", authz)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	b, _ := io.ReadAll(w.Result().Body)
	return w.Code, string(b)
}

// value finds a sample by its name and labels (in the order exposed).
func value(t *testing.T, text, series string) float64 {
	t.Helper()
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		name, v, ok := strings.Cut(sc.Text(), " ")
		if ok && name == series {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatal(err)
			}
			return f
		}
	}
	return 0
}

func TestCountersMove(t *testing.T) {
	m := metrics.New(metrics.Config{
		Sandboxes: func(report func(worker, state string, n int)) {
			report("local", "idle", 2)
			report("local", "busy", 1)
		},
		Workers: func(report func(worker, zone string, capacityMB, reservedMB int)) {
			report("local", "z1", 1024, 256)
		},
		Logs: func() (uint64, uint64, uint64) { return 10, 2, 3 },
	})
	const a = "111111111111"
	m.InvokeStarted(a, "f")
	m.ColdStart(a, "f", 150*time.Millisecond)
	m.InvokeStarted(a, "f")
	m.InvokeDone(a, "f", metrics.Success, 20*time.Millisecond)
	m.InvokeStarted(a, "f")
	m.InvokeDone(a, "f", metrics.FunctionError, 30*time.Millisecond)
	m.InvokeStarted(a, "f")
	m.InvokeDone(a, "f", metrics.Timeout, time.Second)
	m.InvokeStarted(a, "f")
	m.Throttled(a, "f", "")
	m.InvokeDone(a, "f", metrics.Throttled, 0)
	m.Throttled(a, "f", "ConcurrentInvocationLimitExceeded")
	m.Throttled(a, "f", "bad reason!")

	code, text := scrape(t, m.Handler(""), "127.0.0.1:5555", "")
	if code != 200 {
		t.Fatalf("scrape: %d %s", code, text)
	}
	l := `{account="111111111111",function="f"`
	for series, want := range map[string]float64{
		"ember_invocations_total" + l + `,outcome="success"}`:                        1,
		"ember_invocations_total" + l + `,outcome="function_error"}`:                 1,
		"ember_invocations_total" + l + `,outcome="timeout"}`:                        1,
		"ember_function_errors_total" + l + `}`:                                      2,
		"ember_throttles_total" + l + `,reason="ConcurrentInvocationLimitExceeded"}`: 1,
		"ember_throttles_total" + l + `,reason="unspecified"}`:                       1,
		"ember_throttles_total" + l + `,reason="_other"}`:                            1,
		"ember_invoke_duration_seconds_count" + l + `}`:                              3,
		"ember_invoke_duration_seconds_bucket" + l + `,le="0.025"}`:                  1,
		"ember_init_duration_seconds_count" + l + `}`:                                1,
		"ember_cold_starts_total" + l + `}`:                                          1,
		"ember_concurrent_executions" + l + `}`:                                      1,
		`ember_sandboxes{state="idle",worker="local"}`:                               2,
		`ember_sandboxes{state="busy",worker="local"}`:                               1,
		`ember_worker_memory_capacity_bytes{worker="local",zone="z1"}`:               1 << 30,
		`ember_worker_memory_reserved_bytes{worker="local",zone="z1"}`:               256 << 20,
		`ember_log_events_stored_total`:                                              10,
		`ember_log_events_lost_total`:                                                2,
		`ember_log_events_cut_total`:                                                 3,
	} {
		if got := value(t, text, series); got != want {
			t.Errorf("%s = %v; want %v", series, got, want)
		}
	}
	if !strings.Contains(text, "go_goroutines") || !strings.Contains(text, "process_cpu_seconds_total") {
		t.Error("no runtime or process metrics")
	}
	if strings.Contains(text, `outcome="throttled"`) {
		t.Error("a throttled request counted as an invocation")
	}
}

func TestLabelCardinalityIsBounded(t *testing.T) {
	m := metrics.New(metrics.Config{MaxFunctions: 3})
	for i := range 10 {
		m.InvokeStarted("111111111111", fmt.Sprintf("f%d", i))
		m.InvokeDone("111111111111", fmt.Sprintf("f%d", i), metrics.Success, time.Millisecond)
	}
	m.InvokeStarted("222222222222", "g")
	m.InvokeDone("222222222222", "g", metrics.Success, time.Millisecond)
	_, text := scrape(t, m.Handler(""), "[::1]:5555", "")
	series := 0
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(line, "ember_invocations_total{") {
			series++
		}
	}
	if series != 5 { // f0, f1, f2, the account's _other, and _other/_other
		t.Fatalf("%d series:\n%s", series, text)
	}
	if v := value(t, text, `ember_invocations_total{account="111111111111",function="_other",outcome="success"}`); v != 7 {
		t.Fatalf("_other of the account: %v", v)
	}
	if v := value(t, text, `ember_invocations_total{account="_other",function="_other",outcome="success"}`); v != 1 {
		t.Fatalf("_other account: %v", v)
	}
	// A function admitted before the cap keeps its own series.
	m.InvokeStarted("111111111111", "f1")
	m.InvokeDone("111111111111", "f1", metrics.Success, time.Millisecond)
	_, text = scrape(t, m.Handler(""), "[::1]:5555", "")
	if v := value(t, text, `ember_invocations_total{account="111111111111",function="f1",outcome="success"}`); v != 2 {
		t.Fatalf("f1: %v", v)
	}
}

func TestAccessToTheHandler(t *testing.T) {
	m := metrics.New(metrics.Config{})
	open := m.Handler("")
	if code, _ := scrape(t, open, "127.0.0.1:1", ""); code != 200 {
		t.Fatalf("loopback: %d", code)
	}
	if code, _ := scrape(t, open, "192.0.2.7:1", ""); code != 403 {
		t.Fatalf("remote without a token configured: %d", code)
	}
	secured := m.Handler("s3cret")
	for _, tc := range []struct {
		remote, authz string
		want          int
	}{
		{"192.0.2.7:1", "Bearer s3cret", 200},
		{"127.0.0.1:1", "Bearer s3cret", 200},
		{"192.0.2.7:1", "", 401},
		{"127.0.0.1:1", "", 401},
		{"192.0.2.7:1", "Bearer wrong", 401},
		{"192.0.2.7:1", "Basic s3cret", 401},
	} {
		if code, _ := scrape(t, secured, tc.remote, tc.authz); code != tc.want {
			t.Errorf("%s %q: %d; want %d", tc.remote, tc.authz, code, tc.want)
		}
	}
}
