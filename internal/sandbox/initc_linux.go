//go:build linux && cgo

package sandbox

// The C init (init_linux.c) is compiled into every binary that imports
// this package when cgo is on; it runs as a constructor, before the Go
// runtime, and takes over when argv[0] is InitArg0.

// #include <stdlib.h>
// const char *ember_init_arg0(void);
// const char *ember_spawner_arg0(void);
import "C"

// cInit reports whether the C init is built in.
const cInit = true

// cInitArg0 is the argv[0] the C init answers to (must be InitArg0).
func cInitArg0() string { return C.GoString(C.ember_init_arg0()) }

// cSpawnerArg0 is the argv[0] the C spawner answers to (must be
// SpawnerArg0).
func cSpawnerArg0() string { return C.GoString(C.ember_spawner_arg0()) }
