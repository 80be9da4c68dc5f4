package invoke

import (
	"context"
	"log/slog"
)

type logKey struct{}

// WithLogAttrs returns ctx carrying attrs (request id, function, sandbox)
// that every log line written with that context should have: Ember's log
// handler adds them (see cmd/ember), so each component logs with
// InfoContext(ctx, ...) and needs not repeat them.
func WithLogAttrs(ctx context.Context, attrs ...slog.Attr) context.Context {
	prev, _ := ctx.Value(logKey{}).([]slog.Attr)
	all := make([]slog.Attr, 0, len(prev)+len(attrs))
	all = append(append(all, prev...), attrs...)
	return context.WithValue(ctx, logKey{}, all)
}

// LogAttrs are the attrs WithLogAttrs put in ctx.
func LogAttrs(ctx context.Context) []slog.Attr {
	a, _ := ctx.Value(logKey{}).([]slog.Attr)
	return a
}
