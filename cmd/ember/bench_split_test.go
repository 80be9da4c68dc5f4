package main

import (
	"os"
	"os/exec"
	"testing"
	"time"
)

// TestLiveChildrenCPU: a running child's CPU time is counted while it
// runs, in the right unit (its busy loop takes tens of milliseconds of
// CPU at least, well under a minute).
func TestLiveChildrenCPU(t *testing.T) {
	if parentOf(os.Getpid()) != os.Getppid() {
		t.Fatalf("parentOf(self) = %d, want %d", parentOf(os.Getpid()), os.Getppid())
	}
	before := liveChildrenCPU()
	// A bounded busy loop, then a wait on stdin so that the child is
	// still alive (and counted) when it is read.
	cmd := exec.Command("sh", "-c", `i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done; echo done; read x`)
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { in.Close(); cmd.Wait() }()
	var b [5]byte
	if _, err := out.Read(b[:]); err != nil || string(b[:4]) != "done" {
		t.Fatalf("child said %q, %v", b, err)
	}
	spent := liveChildrenCPU() - before
	if spent < 10*time.Millisecond || spent > time.Minute {
		t.Fatalf("liveChildrenCPU grew by %v while a child ran a busy loop", spent)
	}
	t.Logf("the child's busy loop: %v of CPU", spent)
}
