package placement

import (
	"errors"
	"testing"
)

func TestPickByFreeMemory(t *testing.T) {
	s := New()
	if _, err := s.Pick(128); !errors.Is(err, ErrNoCapacity) {
		t.Fatalf("empty registry: %v", err)
	}
	s.Register(Worker{ID: "a", MemoryMB: 1024})
	s.Register(Worker{ID: "b", MemoryMB: 512})
	got := []string{}
	for i := 0; i < 4; i++ {
		id, err := s.Pick(256)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, id)
	}
	// a (1024 free) -> a (768) -> tie 512/512 broken by id: a -> b.
	if want := []string{"a", "a", "a", "b"}; len(got) != 4 || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] || got[3] != want[3] {
		t.Fatalf("picked %v, want %v", got, want)
	}
	if _, err := s.Pick(300); !errors.Is(err, ErrNoCapacity) {
		t.Fatalf("over capacity: %v", err)
	}
	s.Free("a", 256)
	if id, err := s.Pick(256); err != nil || id != "a" {
		t.Fatalf("after free: %s %v", id, err)
	}
	u := s.Workers()
	if len(u) != 2 || u[0].UsedMB != 768 || u[1].UsedMB != 256 {
		t.Fatalf("usage %+v", u)
	}
	s.Remove("a")
	if id, err := s.Pick(128); err != nil || id != "b" {
		t.Fatalf("after remove: %s %v", id, err)
	}
}
