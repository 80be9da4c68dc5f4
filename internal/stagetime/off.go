//go:build !stagetime

package stagetime

// Enabled reports whether this build records stages.
const Enabled = false

// Mark does nothing in the default build.
func Mark(int) {}

// End does nothing in the default build.
func End() {}

// Start does nothing in the default build.
func Start() {}

// Stop returns nothing in the default build.
func Stop() [][NumPoints]int64 { return nil }
