//go:build linux && cgo

package sandbox

// The C init and spawner (init_linux.c) are compiled into every binary
// that imports this package when cgo is on: a constructor that runs
// before the Go runtime and takes the process over when argv[0] is
// SpawnerArg0.

// #include <stdlib.h>
// const char *ember_spawner_arg0(void);
import "C"

// cInit reports whether the C init is built in.
const cInit = true

// cSpawnerArg0 is the argv[0] the C spawner answers to (must be
// SpawnerArg0).
func cSpawnerArg0() string { return C.GoString(C.ember_spawner_arg0()) }
