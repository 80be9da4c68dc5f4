package main

import (
	"bufio"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
)

// Ember's own log (JSON here) has the request id, the function and the
// sandbox on every line it writes for an invoke.
func TestEmberLogLinesOfAnInvoke(t *testing.T) {
	buf := &syncBuffer{}
	_, c, _ := startInvokeEmber(t, func(cfg *serveConfig) {
		cfg.Log = slog.New(ctxHandler{slog.NewJSONHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug})})
	})
	createProbe(t, c, "chatty", nil)
	out, _ := invokeJSON(t, c, "chatty", map[string]any{"mode": "log", "n": 2, "label": "slog"}, false)
	rid, _ := awsmiddleware.GetRequestIDMetadata(out.ResultMetadata)
	if rid == "" {
		t.Fatal("no request id")
	}
	lines := 0
	sc := bufio.NewScanner(strings.NewReader(buf.String()))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var rec map[string]any
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatalf("not JSON: %s", sc.Text())
		}
		if rec["request_id"] != rid {
			continue
		}
		lines++
		if rec["function"] == nil || rec["function"] == "" || rec["sandbox"] == nil || rec["sandbox"] == "" {
			t.Errorf("a line of the invoke without function or sandbox: %s", sc.Text())
		}
	}
	// The function's two lines, its stderr line, and the "invoked" line.
	if lines < 4 {
		t.Fatalf("only %d lines carry the request id:\n%s", lines, buf.String())
	}
}
