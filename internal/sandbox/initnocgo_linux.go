//go:build linux && !cgo

package sandbox

// Without cgo there is no C init: the Go init (init_linux.go) does the
// work, after the package inits of the whole binary.

const cInit = false

func cSpawnerArg0() string { return SpawnerArg0 }
