// Package placement is the Placement Service: it knows the worker hosts
// and their capacity, and picks the worker a new sandbox goes to.
package placement

import (
	"errors"
	"fmt"
	"sort"
	"sync"
)

// ErrNoCapacity means no registered worker has room for the sandbox.
var ErrNoCapacity = errors.New("placement: no worker has capacity")

// ErrUnknownWorker means the worker is not registered.
var ErrUnknownWorker = errors.New("placement: unknown worker")

// Worker describes a worker host.
type Worker struct {
	ID   string
	Zone string
	// MemoryMB is the memory the worker offers to sandboxes.
	MemoryMB int
}

type entry struct {
	Worker
	usedMB int
}

// Service is the registry of workers. Its state is soft: workers register
// again when they (re)connect.
type Service struct {
	mu      sync.Mutex
	workers map[string]*entry
}

// New makes an empty registry.
func New() *Service { return &Service{workers: map[string]*entry{}} }

// Register adds or updates a worker.
func (s *Service) Register(w Worker) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.workers[w.ID]; ok {
		e.Worker = w
		return
	}
	s.workers[w.ID] = &entry{Worker: w}
}

// Remove forgets a worker.
func (s *Service) Remove(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.workers, id)
}

// Pick chooses the worker with the most free memory that can hold memMB,
// and reserves that memory on it until Free.
func (s *Service) Pick(memMB int) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var best *entry
	for _, e := range s.workers {
		free := e.MemoryMB - e.usedMB
		if free < memMB {
			continue
		}
		if best == nil || free > best.MemoryMB-best.usedMB || (free == best.MemoryMB-best.usedMB && e.ID < best.ID) {
			best = e
		}
	}
	if best == nil {
		return "", fmt.Errorf("%w (%d MB asked)", ErrNoCapacity, memMB)
	}
	best.usedMB += memMB
	return best.ID, nil
}

// Free returns memory reserved by Pick.
func (s *Service) Free(id string, memMB int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.workers[id]; ok {
		e.usedMB -= memMB
		if e.usedMB < 0 {
			e.usedMB = 0
		}
	}
}

// FreeMB is each worker's memory not reserved by Pick.
func (s *Service) FreeMB() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int, len(s.workers))
	for id, e := range s.workers {
		out[id] = e.MemoryMB - e.usedMB
	}
	return out
}

// Usage is one worker's capacity and reserved memory.
type Usage struct {
	Worker
	UsedMB int
}

// Workers lists the registered workers and their use, by id.
func (s *Service) Workers() []Usage {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Usage, 0, len(s.workers))
	for _, e := range s.workers {
		out = append(out, Usage{Worker: e.Worker, UsedMB: e.usedMB})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}
