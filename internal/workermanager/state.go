package workermanager

import "fmt"

// State is a sandbox's state in the Worker Manager's table.
type State int

// The states of a sandbox.
const (
	Starting State = iota // being made on a worker
	Idle                  // warm, waiting for an invocation
	Busy                  // running an invocation
	Draining              // being destroyed
	Dead                  // gone; removed from the table
)

func (s State) String() string {
	switch s {
	case Starting:
		return "starting"
	case Idle:
		return "idle"
	case Busy:
		return "busy"
	case Draining:
		return "draining"
	case Dead:
		return "dead"
	}
	return fmt.Sprintf("State(%d)", int(s))
}

// allowed is every transition a sandbox may make; nothing else changes a
// sandbox's state.
var allowed = map[State][]State{
	Starting: {Busy, Dead},     // made for the invocation that asked; or failed
	Idle:     {Busy, Draining}, // reserved; or reclaimed / retired
	Busy:     {Idle, Draining}, // released healthy; or failed, timed out, retired
	Draining: {Dead},           // destroyed
}

// transition moves sb to next or panics: an illegal transition is a bug in
// this package, never a consequence of input.
func (sb *sandbox) transition(next State) {
	for _, s := range allowed[sb.state] {
		if s == next {
			sb.state = next
			return
		}
	}
	panic(fmt.Sprintf("workermanager: illegal transition %s -> %s of sandbox %s", sb.state, next, sb.id))
}
