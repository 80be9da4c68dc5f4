package main

import (
	"os"
	"os/exec"
	"testing"
)

// TestLiveChildrenCPU: a running child's CPU time is counted while it
// runs, and a process that is not a child is not.
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
	if spent <= 0 {
		t.Fatalf("liveChildrenCPU grew by %v while a child ran a busy loop", spent)
	}
	t.Logf("the child's busy loop: %v of CPU", spent)
}
