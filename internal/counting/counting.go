// Package counting is the Counting Service: the view of concurrency per
// account and per function, granting or refusing a slot for each invoke.
package counting

import (
	"context"
	"sync"

	"github.com/emberfn/ember/internal/lambdaapi"
)

// Config configures the service.
type Config struct {
	// AccountLimit is the concurrency limit of every account (default
	// 1,000, Lambda's).
	AccountLimit int
}

// Service counts concurrent invocations. Its counts live in memory and are
// rebuilt from nothing on start (DESIGN.md section 2).
type Service struct {
	limit int

	mu        sync.Mutex
	accounts  map[string]int
	functions map[string]int
}

// New makes the service.
func New(cfg Config) *Service {
	if cfg.AccountLimit == 0 {
		cfg.AccountLimit = 1000
	}
	return &Service{limit: cfg.AccountLimit, accounts: map[string]int{}, functions: map[string]int{}}
}

// Acquire takes a slot for one invocation of function (a key unique in the
// account) or answers Lambda's 429. The returned release gives the slot
// back; calling it more than once is harmless.
func (s *Service) Acquire(_ context.Context, account, function string) (release func(), err error) {
	s.mu.Lock()
	if s.accounts[account] >= s.limit {
		s.mu.Unlock()
		e := lambdaapi.Errorf(lambdaapi.TooManyRequests, "Rate Exceeded.")
		e.Reason = lambdaapi.ReasonConcurrentInvocationLimitExceeded
		e.RetryAfterSeconds = "1"
		return nil, e
	}
	s.accounts[account]++
	s.functions[account+"/"+function]++
	s.mu.Unlock()
	var once sync.Once
	return func() { once.Do(func() { s.release(account, function) }) }, nil
}

func (s *Service) release(account, function string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.accounts[account]--; s.accounts[account] <= 0 {
		delete(s.accounts, account)
	}
	k := account + "/" + function
	if s.functions[k]--; s.functions[k] <= 0 {
		delete(s.functions, k)
	}
}

// Usage is the account's and the function's current concurrency.
func (s *Service) Usage(account, function string) (int, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.accounts[account], s.functions[account+"/"+function]
}
