package main

import (
	"github.com/emberfn/ember/internal/sandbox"
	"os"
	"os/exec"
	"testing"
	"time"
)

// TestLiveChildrenCPU: a running child's CPU time is counted while it
// runs, in the right unit (its busy loop takes tens of milliseconds of
// CPU at least, well under a minute), and apart when the child is the
// sandbox spawner (by its argv[0]).
func TestLiveChildrenCPU(t *testing.T) {
	if parentOf(os.Getpid()) != os.Getppid() {
		t.Fatalf("parentOf(self) = %d, want %d", parentOf(os.Getpid()), os.Getppid())
	}
	for _, arg0 := range []string{"sh", sandbox.SpawnerArg0} {
		sandboxes0, spawner0 := liveChildrenCPU()
		// A bounded busy loop, then a wait on stdin so that the child is
		// still alive (and counted) when it is read.
		cmd := &exec.Cmd{Path: "/bin/sh", Args: []string{arg0, "-c", `i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done; echo done; read x`}}
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
		var b [5]byte
		_, err = out.Read(b[:])
		sandboxes1, spawner1 := liveChildrenCPU()
		in.Close()
		cmd.Wait()
		if err != nil || string(b[:4]) != "done" {
			t.Fatalf("child said %q, %v", b, err)
		}
		spent, other := sandboxes1-sandboxes0, spawner1-spawner0
		if arg0 == sandbox.SpawnerArg0 {
			spent, other = other, spent
		}
		if spent < 10*time.Millisecond || spent > time.Minute {
			t.Fatalf("%s: liveChildrenCPU grew by %v while a child ran a busy loop", arg0, spent)
		}
		if other != 0 {
			t.Errorf("%s: the other part grew by %v", arg0, other)
		}
		t.Logf("%s: the child's busy loop: %v of CPU", arg0, spent)
	}
}
