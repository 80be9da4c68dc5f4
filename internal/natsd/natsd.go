// Package natsd runs the embedded NATS server with JetStream that holds
// Ember's state in the single-node default.
package natsd

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// ErrNotReady is returned when the server does not become ready in time.
var ErrNotReady = errors.New("natsd: server not ready")

// Config configures the embedded server.
type Config struct {
	// StoreDir is where JetStream keeps its files (required).
	StoreDir string
	// Listen, if set ("127.0.0.1:4222", or port 0 for a free port), makes
	// the server accept TCP clients; empty means in-process clients only.
	Listen string
	// SyncEveryWrite fsyncs JetStream after every write (Ember's default
	// for the embedded store). When false NATS's periodic sync is used.
	SyncEveryWrite bool
	// ReadyTimeout bounds start-up (default 30 s).
	ReadyTimeout time.Duration
	// Logger receives the server's notices and errors (optional).
	Logger *slog.Logger
}

// Server is a running embedded NATS server.
type Server struct {
	ns *server.Server
}

// Start starts the server and waits until it accepts connections.
func Start(cfg Config) (*Server, error) {
	if cfg.StoreDir == "" {
		return nil, errors.New("natsd: StoreDir is required")
	}
	if cfg.ReadyTimeout == 0 {
		cfg.ReadyTimeout = 30 * time.Second
	}
	opts := &server.Options{
		ServerName:            "ember",
		JetStream:             true,
		StoreDir:              filepath.Clean(cfg.StoreDir),
		SyncAlways:            cfg.SyncEveryWrite,
		NoSigs:                true,
		MaxPayload:            8 * 1024 * 1024,
		DisableShortFirstPing: true,
	}
	if cfg.Listen == "" {
		opts.DontListen = true
	} else {
		host, port, err := splitHostPort(cfg.Listen)
		if err != nil {
			return nil, err
		}
		opts.Host, opts.Port = host, port
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("natsd: %w", err)
	}
	if cfg.Logger != nil {
		ns.SetLoggerV2(&logger{l: cfg.Logger}, false, false, false)
	}
	ns.Start()
	if !ns.ReadyForConnections(cfg.ReadyTimeout) {
		ns.Shutdown()
		ns.WaitForShutdown()
		return nil, ErrNotReady
	}
	return &Server{ns: ns}, nil
}

// Connect opens a client connection: in-process when the server does not
// listen, so the embedded path pays for no socket.
func (s *Server) Connect(opts ...nats.Option) (*nats.Conn, error) {
	opts = append([]nats.Option{nats.InProcessServer(s.ns), nats.Name("ember")}, opts...)
	return nats.Connect("", opts...)
}

// ClientURL is the TCP URL of a listening server ("" if in-process only).
func (s *Server) ClientURL() string {
	if s.ns.Addr() == nil {
		return ""
	}
	return s.ns.ClientURL()
}

// Shutdown stops the server and waits for it to finish writing.
func (s *Server) Shutdown() {
	s.ns.Shutdown()
	s.ns.WaitForShutdown()
}

func splitHostPort(addr string) (string, int, error) {
	var host string
	var port int
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("natsd: listen %q: %w", addr, err)
	}
	host = h
	if _, err := fmt.Sscanf(p, "%d", &port); err != nil {
		return "", 0, fmt.Errorf("natsd: listen %q: bad port", addr)
	}
	if port == 0 {
		port = server.RANDOM_PORT
	}
	return host, port, nil
}

// logger adapts the server's logger to slog.
type logger struct{ l *slog.Logger }

func (g *logger) Noticef(format string, v ...any) { g.l.Debug(fmt.Sprintf(format, v...)) }
func (g *logger) Warnf(format string, v ...any)   { g.l.Warn(fmt.Sprintf(format, v...)) }
func (g *logger) Fatalf(format string, v ...any)  { g.l.Error(fmt.Sprintf(format, v...)) }
func (g *logger) Errorf(format string, v ...any)  { g.l.Error(fmt.Sprintf(format, v...)) }
func (g *logger) Debugf(format string, v ...any)  {}
func (g *logger) Tracef(format string, v ...any)  {}
