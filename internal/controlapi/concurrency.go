package controlapi

import (
	"context"
	"errors"
	"net/http"

	"github.com/emberfn/ember/internal/lambdaapi"
	"github.com/emberfn/ember/internal/store"
)

// Lambda's account-wide code limits, reported by GetAccountSettings.
const (
	totalCodeSizeLimit = 80530636800
	codeSizeUnzipped   = 262144000
	codeSizeZipped     = 52428800
)

// accountLimit is the account's concurrency limit and the sum of what its
// functions carve out of it, but for except (a function being changed): a
// function's reservation, or, without one, its provisioned concurrency.
func (s *Server) accountLimit(ctx context.Context, account, except string) (limit, reserved int, usage lambdaapi.AccountUsage, err error) {
	limit = s.cfg.AccountConcurrency
	a, err := s.cfg.Store.Account(ctx, account)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return 0, 0, usage, err
	}
	if a.ConcurrencyLimit > 0 {
		limit = a.ConcurrencyLimit
	}
	prov, err := s.provisionedSums(ctx, account)
	if err != nil {
		return 0, 0, usage, err
	}
	after := ""
	for {
		fs, more, err := s.cfg.Store.ListFunctions(ctx, account, after, 1000)
		if err != nil {
			return 0, 0, usage, err
		}
		for _, f := range fs {
			usage.FunctionCount++
			usage.TotalCodeSize += f.CodeSize
			switch {
			case f.Name == except:
			case f.ReservedConcurrency != nil:
				reserved += *f.ReservedConcurrency
			default:
				reserved += prov[f.Name]
			}
		}
		if !more || len(fs) == 0 {
			return limit, reserved, usage, nil
		}
		after = fs[len(fs)-1].Name
	}
}

func (s *Server) putFunctionConcurrency(w http.ResponseWriter, r *request) error {
	var in struct {
		ReservedConcurrentExecutions *int `json:"ReservedConcurrentExecutions"`
	}
	if err := decode(r, &in); err != nil {
		return err
	}
	if in.ReservedConcurrentExecutions == nil || *in.ReservedConcurrentExecutions < 0 {
		return lambdaapi.Validationf(
			"Value at 'reservedConcurrentExecutions' failed to satisfy constraint: Member must have value greater than or equal to 0")
	}
	n := *in.ReservedConcurrentExecutions
	// Serialised per account with code writes, so two reservations cannot
	// together break the minimum left unreserved.
	unlock := s.lockCode(r.principal.AccountID)
	defer unlock()
	cur, err := s.resolve(r)
	if err != nil {
		return err
	}
	limit, reserved, _, err := s.accountLimit(r.Context(), cur.AccountID, cur.Name)
	if err != nil {
		return err
	}
	prov, err := s.provisionedSums(r.Context(), cur.AccountID)
	if err != nil {
		return err
	}
	if p := prov[cur.Name]; n < p {
		return lambdaapi.Errorf(lambdaapi.InvalidParameterValue,
			"ReservedConcurrentExecutions %d should not be lower than function's total provisioned concurrency [%d]", n, p)
	}
	// Only a reservation that grows can take the unreserved pool below its
	// minimum: 0, or less than the function has, is always allowed.
	had := 0
	if cur.ReservedConcurrency != nil {
		had = *cur.ReservedConcurrency
	}
	if n > had && limit-(reserved+n) < s.cfg.MinUnreserved {
		return lambdaapi.Errorf(lambdaapi.InvalidParameterValue,
			"Specified ReservedConcurrentExecutions for function decreases account's UnreservedConcurrentExecution below its minimum value of [%d].", s.cfg.MinUnreserved)
	}
	if _, _, err := s.modifyRev(r, modification{write: true}, func(f *store.Function) error {
		f.ReservedConcurrency = &n
		return nil
	}); err != nil {
		return err
	}
	s.reservationChanged(cur.AccountID, cur.Name, &n)
	return writeJSON(w, http.StatusOK, lambdaapi.Concurrency{ReservedConcurrentExecutions: &n})
}

func (s *Server) getFunctionConcurrency(w http.ResponseWriter, r *request) error {
	f, err := s.resolve(r)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, lambdaapi.Concurrency{ReservedConcurrentExecutions: f.ReservedConcurrency})
}

func (s *Server) deleteFunctionConcurrency(w http.ResponseWriter, r *request) error {
	f, _, err := s.modifyRev(r, modification{write: true}, func(f *store.Function) error {
		f.ReservedConcurrency = nil
		return nil
	})
	if err != nil {
		return err
	}
	s.reservationChanged(f.AccountID, f.Name, nil)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) getAccountSettings(w http.ResponseWriter, r *request) error {
	limit, reserved, usage, err := s.accountLimit(r.Context(), r.principal.AccountID, "")
	if err != nil {
		return err
	}
	// As Lambda's, the storage used counts layers too.
	layers, err := s.cfg.Store.ListLayerVersions(r.Context(), r.principal.AccountID, "")
	if err != nil {
		return err
	}
	for _, l := range layers {
		usage.TotalCodeSize += l.CodeSize
	}
	unreserved := limit - reserved
	return writeJSON(w, http.StatusOK, lambdaapi.AccountSettings{
		AccountLimit: lambdaapi.AccountLimit{
			TotalCodeSize: totalCodeSizeLimit, CodeSizeUnzipped: codeSizeUnzipped, CodeSizeZipped: codeSizeZipped,
			ConcurrentExecutions: limit, UnreservedConcurrentExecutions: &unreserved,
		},
		AccountUsage: usage,
	})
}

// setAccountLimit is Ember's admin API: PUT /ember/v1/accounts/{id}/concurrency-limit
// {"Limit": N} (0: back to the installation's default).
func (s *Server) setAccountLimit(w http.ResponseWriter, r *request) error {
	if !r.principal.Admin {
		return lambdaapi.Errorf(lambdaapi.AccessDenied, "Only an administrator account may change account limits")
	}
	var in struct {
		Limit *int `json:"Limit"`
	}
	if err := decode(r, &in); err != nil {
		return err
	}
	if in.Limit == nil || *in.Limit < 0 {
		return lambdaapi.Errorf(lambdaapi.InvalidParameterValue, "Limit must be 0 (the default) or more")
	}
	id := r.PathValue("id")
	if _, err := s.cfg.Store.Account(r.Context(), id); errors.Is(err, store.ErrNotFound) {
		return lambdaapi.Errorf(lambdaapi.ResourceNotFound, "Account not found: %s", id)
	} else if err != nil {
		return err
	}
	// Lambda's rule: the limit must hold the account's reservations and
	// provisioned concurrency and still leave MinUnreserved to its other
	// functions. Serialised with the account's reservations.
	unlock := s.lockCode(id)
	defer unlock()
	_, carved, _, err := s.accountLimit(r.Context(), id, "")
	if err != nil {
		return err
	}
	limit := *in.Limit
	if limit == 0 {
		limit = s.cfg.AccountConcurrency
	}
	if limit < carved+s.cfg.MinUnreserved {
		return lambdaapi.Errorf(lambdaapi.InvalidParameterValue,
			"Limit %d is below what the account's reserved and provisioned concurrency (%d) and the minimum UnreservedConcurrentExecutions (%d) need: at least %d",
			limit, carved, s.cfg.MinUnreserved, carved+s.cfg.MinUnreserved)
	}
	a, err := s.cfg.Store.SetAccountLimit(r.Context(), id, *in.Limit)
	if errors.Is(err, store.ErrNotFound) {
		return lambdaapi.Errorf(lambdaapi.ResourceNotFound, "Account not found: %s", id)
	}
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, map[string]any{"AccountId": a.ID, "ConcurrencyLimit": a.ConcurrencyLimit})
}

func (s *Server) reservationChanged(account, fn string, n *int) {
	if s.cfg.OnReservation != nil {
		s.cfg.OnReservation(account, fn, n)
	}
}
