//go:build !linux

package sandbox

import (
	"context"
	"net"
)

// Manager is unavailable on this OS: NewManager fails.
type Manager struct{}

// NewManager returns ErrUnsupported: sandboxes need Linux (the process
// backend too, for now).
func NewManager(cfg Config) (*Manager, error) { return nil, ErrUnsupported }

// Backend returns "".
func (m *Manager) Backend() Backend { return "" }

// CgroupVersion returns 0.
func (m *Manager) CgroupVersion() int { return 0 }

// Start returns ErrUnsupported.
func (m *Manager) Start(ctx context.Context, spec Spec) (*Sandbox, error) {
	return nil, ErrUnsupported
}

// Shutdown does nothing.
func (m *Manager) Shutdown(ctx context.Context) error { return nil }

// Sandbox is never created on this OS.
type Sandbox struct{}

// ID returns "".
func (s *Sandbox) ID() string { return "" }

// Pid returns 0.
func (s *Sandbox) Pid() int { return 0 }

// HostIDs returns -1, -1.
func (s *Sandbox) HostIDs() (uid, gid int) { return -1, -1 }

// Listener returns nil.
func (s *Sandbox) Listener() net.Listener { return nil }

// Done returns a closed channel.
func (s *Sandbox) Done() <-chan struct{} { c := make(chan struct{}); close(c); return c }

// ExitError returns ErrUnsupported.
func (s *Sandbox) ExitError() error { return ErrUnsupported }

// OOMKilled returns false.
func (s *Sandbox) OOMKilled() bool { return false }

// MaxMemoryBytes returns 0.
func (s *Sandbox) MaxMemoryBytes() int64 { return 0 }

// Destroy does nothing.
func (s *Sandbox) Destroy(ctx context.Context) error { return nil }
