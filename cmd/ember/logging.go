package main

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/emberfn/ember/internal/invoke"
)

// ctxHandler adds the attrs an invoke's context carries (request id,
// function, sandbox; invoke.WithLogAttrs) to every line logged with it.
type ctxHandler struct{ slog.Handler }

func (h ctxHandler) Handle(ctx context.Context, r slog.Record) error {
	if attrs := invoke.LogAttrs(ctx); len(attrs) > 0 {
		r = r.Clone()
		r.AddAttrs(attrs...)
	}
	return h.Handler.Handle(ctx, r)
}

func (h ctxHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return ctxHandler{h.Handler.WithAttrs(attrs)}
}

func (h ctxHandler) WithGroup(name string) slog.Handler { return ctxHandler{h.Handler.WithGroup(name)} }

// logFormats are the values of ember serve --log-format.
var logFormats = []string{"text", "json"}

// checkLogFormat rejects a --log-format other than text or json (an
// unknown one would otherwise silently give text).
func checkLogFormat(format string) error {
	for _, f := range logFormats {
		if format == f {
			return nil
		}
	}
	return fmt.Errorf("--log-format %q: want text or json", format)
}
