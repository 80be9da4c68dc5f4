package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"
)

// knownUnattributed are invoke-time lines of other packages that do not
// carry the invoke's attrs yet (their loggers are not given the invoke's
// context); every other line of an invoke must.
var knownUnattributed = map[string]bool{}

// checkInvokeLines checks the lines of Ember's log (each already parsed)
// that an invoke wrote: those with its request id, and all those
// timestamped while it ran, other than NATS's. Each must carry the request
// id, the function and the sandbox; it returns how many there were.
func checkInvokeLines(t *testing.T, recs []map[string]string, rid string, from, to time.Time) int {
	t.Helper()
	n := 0
	for _, rec := range recs {
		ts, err := time.Parse(time.RFC3339Nano, rec["time"])
		if err != nil {
			t.Fatalf("line without a time: %v", rec)
		}
		during := !ts.Before(from) && !ts.After(to) && rec["component"] != "natsd"
		if rec["request_id"] != rid && !during {
			continue
		}
		n++
		if knownUnattributed[rec["msg"]] && rec["request_id"] == "" {
			continue
		}
		if rec["request_id"] != rid || rec["function"] == "" || rec["sandbox"] == "" {
			t.Errorf("a line of the invoke without its request id, function or sandbox: %v", rec)
		}
	}
	return n
}

// jsonRecords parses every line of a JSON log; a line that is not a JSON
// object fails the test.
func jsonRecords(t *testing.T, log string) []map[string]string {
	t.Helper()
	var out []map[string]string
	sc := bufio.NewScanner(strings.NewReader(log))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var rec map[string]any
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatalf("not JSON: %s", sc.Text())
		}
		m := map[string]string{}
		for k, v := range rec {
			if s, ok := v.(string); ok {
				m[k] = s
			} else {
				m[k] = fmt.Sprint(v)
			}
		}
		out = append(out, m)
	}
	return out
}

// textRecord parses a line of slog's text format: key=value pairs, values
// quoted when they need it.
func textRecord(line string) (map[string]string, error) {
	m := map[string]string{}
	for rest := line; rest != ""; {
		k, v, ok := strings.Cut(rest, "=")
		if !ok || k == "" || strings.ContainsAny(k, " \"") {
			return nil, fmt.Errorf("no key=value at %q", rest)
		}
		if strings.HasPrefix(v, `"`) {
			q, err := strconv.QuotedPrefix(v)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", k, err)
			}
			m[k], _ = strconv.Unquote(q)
			v = v[len(q):]
		} else {
			i := strings.IndexByte(v, ' ')
			if i < 0 {
				i = len(v)
			}
			m[k], v = v[:i], v[i:]
		}
		if v != "" && v[0] != ' ' {
			return nil, fmt.Errorf("%s: junk after the value: %q", k, v)
		}
		rest = strings.TrimPrefix(v, " ")
	}
	for _, k := range []string{"time", "level", "msg"} {
		if _, ok := m[k]; !ok {
			return nil, fmt.Errorf("no %s", k)
		}
	}
	return m, nil
}

// Ember's own log (JSON here, at debug level) has the request id, the
// function and the sandbox on every line it writes for an invoke, cold
// and warm.
func TestEmberLogLinesOfAnInvoke(t *testing.T) {
	buf := &syncBuffer{}
	_, c, _ := startInvokeEmber(t, func(cfg *serveConfig) {
		cfg.Log = slog.New(ctxHandler{slog.NewJSONHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug})})
	})
	createProbe(t, c, "chatty", nil)
	for _, temp := range []string{"cold", "warm"} {
		from := time.Now()
		out, _ := invokeJSON(t, c, "chatty", map[string]any{"mode": "log", "n": 2, "label": "slog"}, false)
		to := time.Now()
		rid := requestIDOf(t, out)
		// START, the function's two lines and its stderr line, END,
		// REPORT, and the "invoked" line.
		if n := checkInvokeLines(t, jsonRecords(t, buf.String()), rid, from, to); n < 7 {
			t.Fatalf("%s invoke: only %d lines of it:\n%s", temp, n, buf.String())
		}
	}
}

// ember serve --log-format json and text (the built binary, at debug
// level): every line is a record of that format, and an invoke's carry
// its request id, function and sandbox.
func TestServeLogFormats(t *testing.T) {
	b := buildEmber(t)
	// An unknown format is refused before anything starts.
	if _, stderr, code := b.run(b.env(), "serve", "--log-format", "yaml", "--data-dir", t.TempDir()); code != 2 ||
		!strings.Contains(stderr, `--log-format "yaml": want text or json`) {
		t.Fatalf("serve --log-format yaml: exit %d, %s", code, stderr)
	}
	for _, format := range []string{"json", "text"} {
		t.Run(format, func(t *testing.T) {
			b := &builtEmber{t: t, bin: b.bin, xdg: b.xdg}
			srv := b.serve("--log-format", format, "--log-level", "debug")
			c := srv.client(srv.creds("default"))
			createProbe(t, c, "fmt", nil)
			from := time.Now()
			out, _ := invokeJSON(t, c, "fmt", map[string]any{"mode": "log", "n": 1, "label": format}, false)
			to := time.Now()
			rid := requestIDOf(t, out)
			var recs []map[string]string
			pollUntil(t, "the invoked line", 30*time.Second, 20*time.Millisecond, func() bool {
				recs = nil
				log := srv.stderr.String()
				if format == "json" {
					recs = jsonRecords(t, log)
				} else {
					for _, l := range strings.Split(strings.TrimSuffix(log, "\n"), "\n") {
						rec, err := textRecord(l)
						if err != nil {
							t.Fatalf("not slog's text format (%v): %s", err, l)
						}
						recs = append(recs, rec)
					}
				}
				return strings.Contains(log, "invoked")
			})
			if n := checkInvokeLines(t, recs, rid, from, to); n < 6 {
				t.Fatalf("only %d lines of the invoke:\n%s", n, srv.stderr.String())
			}
			var ready bool
			for _, r := range recs {
				ready = ready || r["msg"] == "ready" && r["level"] == "INFO" && strings.HasPrefix(srv.url, "http://"+r["listen"])
			}
			if !ready {
				t.Fatalf("no ready line:\n%s", srv.stderr.String())
			}
		})
	}
}

func TestCheckLogFormat(t *testing.T) {
	for _, f := range []string{"text", "json"} {
		if err := checkLogFormat(f); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
	for _, f := range []string{"", "JSON", "yaml", "logfmt"} {
		if err := checkLogFormat(f); err == nil || err.Error() != fmt.Sprintf("--log-format %q: want text or json", f) {
			t.Errorf("%q: %v", f, err)
		}
	}
}
