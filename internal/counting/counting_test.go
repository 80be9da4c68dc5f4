package counting

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/emberfn/ember/internal/lambdaapi"
)

func TestAccountLimit(t *testing.T) {
	s := New(Config{AccountLimit: 2})
	ctx := context.Background()
	r1, err := s.Acquire(ctx, "a", "f")
	if err != nil {
		t.Fatal(err)
	}
	r2, err := s.Acquire(ctx, "a", "g")
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Acquire(ctx, "a", "f")
	var le *lambdaapi.Error
	if !errors.As(err, &le) || le.Status() != 429 || le.Reason != lambdaapi.ReasonConcurrentInvocationLimitExceeded {
		t.Fatalf("third acquire: %v", err)
	}
	if _, err := s.Acquire(ctx, "b", "f"); err != nil {
		t.Fatalf("another account is limited by the first: %v", err)
	}
	r1()
	r1() // twice is harmless
	if a, f := s.Usage("a", "f"); a != 1 || f != 0 {
		t.Fatalf("usage after release: %d %d", a, f)
	}
	r3, err := s.Acquire(ctx, "a", "f")
	if err != nil {
		t.Fatal(err)
	}
	r2()
	r3()
	if a, _ := s.Usage("a", "f"); a != 0 || len(s.accounts) != 1 || len(s.functions) != 1 {
		t.Fatalf("counts not cleaned: %v %v", s.accounts, s.functions)
	}
}

func TestConcurrentAcquireNeverExceeds(t *testing.T) {
	s := New(Config{AccountLimit: 5})
	var wg sync.WaitGroup
	var mu sync.Mutex
	max, cur := 0, 0
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 100; j++ {
				rel, err := s.Acquire(context.Background(), "a", "f")
				if err != nil {
					continue
				}
				mu.Lock()
				cur++
				if cur > max {
					max = cur
				}
				mu.Unlock()
				mu.Lock()
				cur--
				mu.Unlock()
				rel()
			}
		}()
	}
	wg.Wait()
	if max > 5 {
		t.Fatalf("%d concurrent slots with limit 5", max)
	}
	if a, f := s.Usage("a", "f"); a != 0 || f != 0 {
		t.Fatalf("leaked slots: %d %d", a, f)
	}
}
