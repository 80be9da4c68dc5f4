package controlapi

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/emberfn/ember/internal/lambdaapi"
	"github.com/emberfn/ember/internal/store"
)

// Provisioned concurrency: a configuration per version or alias (never
// $LATEST), stored in the ember-provisioned bucket; the Worker Manager is
// told, per function, how many initialised sandboxes each version should
// have (an alias's configuration applies to the version it points to), and
// Get/List report how many it has. The amounts count against the
// function's reserved concurrency if it has one (their sum may not exceed
// it), else against the account's unreserved pool, which must keep
// MinUnreserved.

// Provisioner is what the control API needs of the Worker Manager.
type Provisioner interface {
	// SetProvisioned replaces what the versions of one function
	// ("account.name") should have.
	SetProvisioned(function string, want []store.ProvisionedVersion)
	// ProvisionedStatus is how many sandboxes of a version
	// ("account.name:version") are ready, and the last failure.
	ProvisionedStatus(version string) (allocated int, failure string)
}

// ProvisionedStore is the storage of the configurations.
type ProvisionedStore interface {
	PutProvisioned(ctx context.Context, c store.ProvisionedConfig) error
	GetProvisioned(ctx context.Context, account, function, qualifier string) (store.ProvisionedConfig, error)
	DeleteProvisioned(ctx context.Context, account, function, qualifier string) error
	ListProvisioned(ctx context.Context, account, function string) ([]store.ProvisionedConfig, error)
}

// Lambda's status values.
const (
	provInProgress = "IN_PROGRESS"
	provReady      = "READY"
	provFailed     = "FAILED"
)

// provisionedConfig is Get/Put's answer; with FunctionArn a List item.
type provisionedConfig struct {
	FunctionArn                              string `json:"FunctionArn,omitempty"`
	RequestedProvisionedConcurrentExecutions int    `json:"RequestedProvisionedConcurrentExecutions"`
	AvailableProvisionedConcurrentExecutions int    `json:"AvailableProvisionedConcurrentExecutions"`
	AllocatedProvisionedConcurrentExecutions int    `json:"AllocatedProvisionedConcurrentExecutions"`
	Status                                   string `json:"Status"`
	StatusReason                             string `json:"StatusReason,omitempty"`
	LastModified                             string `json:"LastModified"`
}

func provNotFound() error {
	return &statusError{le: lambdaapi.Errorf("ProvisionedConcurrencyConfigNotFoundException",
		"No Provisioned Concurrency Config found for this function"), status: http.StatusNotFound}
}

// statusError is a Lambda error whose type lambdaapi has no status for.
type statusError struct {
	le     *lambdaapi.Error
	status int
}

func (e *statusError) Error() string { return e.le.Error() }

// versionOf is the version a qualifier names (an alias's version), ""
// if the alias or version does not exist any more.
func (s *Server) versionOf(ctx context.Context, account, function, qualifier string) (store.Function, bool, error) {
	version := qualifier
	if !lambdaapi.IsVersionNumber(qualifier) {
		a, err := s.cfg.Store.GetAlias(ctx, account, function, qualifier)
		if errors.Is(err, store.ErrNotFound) {
			return store.Function{}, false, nil
		}
		if err != nil {
			return store.Function{}, false, err
		}
		version = a.FunctionVersion
	}
	if version == lambdaapi.VersionLatest {
		return store.Function{}, false, nil
	}
	v, err := s.cfg.Store.GetVersion(ctx, account, function, version)
	if errors.Is(err, store.ErrNotFound) {
		return store.Function{}, false, nil
	}
	return v, err == nil, err
}

// syncProvisioned tells the Worker Manager what the function's
// configurations ask for now.
func (s *Server) syncProvisioned(ctx context.Context, account, function string) error {
	if s.cfg.Provisioned == nil || s.cfg.Provisioner == nil {
		return nil
	}
	cs, err := s.cfg.Provisioned.ListProvisioned(ctx, account, function)
	if err != nil {
		return err
	}
	var want []store.ProvisionedVersion
	for _, c := range cs {
		v, ok, err := s.versionOf(ctx, account, function, c.Qualifier)
		if err != nil {
			return err
		}
		if ok {
			want = append(want, store.ProvisionedVersion{Function: v, Count: c.Requested})
		}
	}
	s.cfg.Provisioner.SetProvisioned(account+"."+function, onePerVersion(want))
	return nil
}

// onePerVersion merges the entries of one version, adding up their
// amounts, so that every consumer counts a version once. The rules of
// putProvisionedConcurrency and updateAlias keep a version from being
// provisioned through two qualifiers; a stored state from before they
// applied to alias updates may still do so.
func onePerVersion(want []store.ProvisionedVersion) []store.ProvisionedVersion {
	var out []store.ProvisionedVersion
	at := map[string]int{} // version -> its index in out
	for _, pv := range want {
		if i, seen := at[pv.Function.Version]; seen {
			out[i].Count += pv.Count
			continue
		}
		at[pv.Function.Version] = len(out)
		out = append(out, pv)
	}
	return out
}

// RestoreProvisioned tells the Worker Manager every stored configuration
// (at start).
func (s *Server) RestoreProvisioned(ctx context.Context) error {
	if s.cfg.Provisioned == nil {
		return nil
	}
	cs, err := s.cfg.Provisioned.ListProvisioned(ctx, "", "")
	if err != nil {
		return err
	}
	done := map[string]bool{}
	for _, c := range cs {
		if k := c.AccountID + "." + c.Function; !done[k] {
			done[k] = true
			if err := s.syncProvisioned(ctx, c.AccountID, c.Function); err != nil {
				return err
			}
		}
	}
	return nil
}

// dropProvisioned deletes configurations of a function: those of one
// qualifier, or (qualifier "") all, and tells the Worker Manager.
func (s *Server) dropProvisioned(ctx context.Context, account, function, qualifier string) {
	if s.cfg.Provisioned == nil {
		return
	}
	var err error
	if qualifier != "" {
		err = s.cfg.Provisioned.DeleteProvisioned(ctx, account, function, qualifier)
	} else {
		var cs []store.ProvisionedConfig
		cs, err = s.cfg.Provisioned.ListProvisioned(ctx, account, function)
		for _, c := range cs {
			if e := s.cfg.Provisioned.DeleteProvisioned(ctx, account, function, c.Qualifier); e != nil && err == nil {
				err = e
			}
		}
	}
	if err == nil {
		err = s.syncProvisioned(ctx, account, function)
	}
	if err != nil {
		s.log.Warn("provisioned concurrency left behind", "account", account, "function", function, "qualifier", qualifier, "err", err)
	}
}

// provisionedElsewhere is the sum of the function's provisioned
// concurrency configurations other than qualifier q's, or a conflict if
// one of them provisions version already: a version and an alias to it
// (or two aliases to one version) cannot both have provisioned
// concurrency, which would provision the version twice.
func (s *Server) provisionedElsewhere(ctx context.Context, account, function, q, version string) (int, error) {
	cs, err := s.cfg.Provisioned.ListProvisioned(ctx, account, function)
	if err != nil {
		return 0, err
	}
	others := 0
	for _, c := range cs {
		if c.Qualifier == q {
			continue
		}
		others += c.Requested
		v, ok, err := s.versionOf(ctx, account, function, c.Qualifier)
		if err != nil {
			return 0, err
		}
		if ok && v.Version == version {
			return 0, lambdaapi.Errorf(lambdaapi.ResourceConflict,
				"Version %s already has Provisioned Concurrency through %s; a version and an alias to it cannot both have it", version, c.Qualifier)
		}
	}
	return others, nil
}

// checkAliasProvisioned refuses an alias update that would break the
// rules putProvisionedConcurrency applies to an alias with provisioned
// concurrency: no weights, and not onto a version provisioned otherwise.
func (s *Server) checkAliasProvisioned(ctx context.Context, a *store.Alias) error {
	if s.cfg.Provisioned == nil {
		return nil
	}
	_, err := s.cfg.Provisioned.GetProvisioned(ctx, a.AccountID, a.Function, a.Name)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if len(a.Weights) > 0 {
		return lambdaapi.Errorf(lambdaapi.InvalidParameterValue, "Alias with weights can not be used with Provisioned Concurrency")
	}
	_, err = s.provisionedElsewhere(ctx, a.AccountID, a.Function, a.Name, a.FunctionVersion)
	return err
}

// provisionedSums is, per function of the account, the sum of its
// provisioned concurrency.
func (s *Server) provisionedSums(ctx context.Context, account string) (map[string]int, error) {
	out := map[string]int{}
	if s.cfg.Provisioned == nil {
		return out, nil
	}
	cs, err := s.cfg.Provisioned.ListProvisioned(ctx, account, "")
	if err != nil {
		return nil, err
	}
	for _, c := range cs {
		out[c.Function] += c.Requested
	}
	return out, nil
}

// provisionedView is a configuration as the Worker Manager sees it.
func (s *Server) provisionedView(ctx context.Context, c store.ProvisionedConfig, arn bool) (provisionedConfig, error) {
	out := provisionedConfig{
		RequestedProvisionedConcurrentExecutions: c.Requested,
		Status:                                   provInProgress,
		LastModified:                             c.LastModified.Format(lambdaapi.TimeFormat),
	}
	if arn {
		out.FunctionArn = lambdaapi.QualifiedARN(s.cfg.Region, c.AccountID, c.Function, c.Qualifier)
	}
	v, ok, err := s.versionOf(ctx, c.AccountID, c.Function, c.Qualifier)
	if err != nil {
		return out, err
	}
	if !ok || s.cfg.Provisioner == nil {
		return out, nil
	}
	n, failure := s.cfg.Provisioner.ProvisionedStatus(v.VersionKey())
	n = min(n, c.Requested)
	out.AllocatedProvisionedConcurrentExecutions, out.AvailableProvisionedConcurrentExecutions = n, n
	switch {
	case n >= c.Requested:
		out.Status = provReady
	case failure != "":
		out.Status, out.StatusReason = provFailed, failure
	}
	return out, nil
}

// provisionedQualifier checks the Qualifier parameter of the provisioned
// concurrency operations.
func provisionedQualifier(r *request) (string, error) {
	q := r.URL.Query().Get("Qualifier")
	if q == "" {
		return "", lambdaapi.Errorf(lambdaapi.InvalidParameterValue, "Qualifier is required for provisioned concurrency")
	}
	if q == lambdaapi.VersionLatest {
		return "", lambdaapi.Errorf(lambdaapi.InvalidParameterValue,
			"Provisioned Concurrency Configs cannot be applied to unpublished function versions.")
	}
	return q, nil
}

func (s *Server) putProvisionedConcurrency(w http.ResponseWriter, r *request) error {
	var in struct {
		ProvisionedConcurrentExecutions *int `json:"ProvisionedConcurrentExecutions"`
	}
	if err := decode(r, &in); err != nil {
		return err
	}
	if in.ProvisionedConcurrentExecutions == nil || *in.ProvisionedConcurrentExecutions < 1 {
		return lambdaapi.Validationf(
			"Value at 'provisionedConcurrentExecutions' failed to satisfy constraint: Member must have value greater than or equal to 1")
	}
	n := *in.ProvisionedConcurrentExecutions
	if r.URL.Query().Get("Qualifier") == "" {
		return lambdaapi.Errorf(lambdaapi.InvalidParameterValue, "Qualifier is required for provisioned concurrency")
	}
	ctx, account := r.Context(), r.principal.AccountID
	// The account's code lock serialises this with reservations, versions
	// and aliases.
	unlock := s.lockCode(account)
	defer unlock()
	t, err := s.resolveTarget(r)
	if err != nil {
		return err
	}
	q, err := provisionedQualifier(r)
	if err != nil {
		return err
	}
	if s.cfg.Provisioned == nil {
		return lambdaapi.Errorf(lambdaapi.InvalidParameterValue, "Provisioned concurrency is not available on this installation")
	}
	name := t.latest.Name
	if !lambdaapi.IsVersionNumber(q) {
		a, err := s.cfg.Store.GetAlias(ctx, account, name, q)
		if err != nil {
			return err
		}
		if len(a.Weights) > 0 {
			return lambdaapi.Errorf(lambdaapi.InvalidParameterValue, "Alias with weights can not be used with Provisioned Concurrency")
		}
	}
	others, err := s.provisionedElsewhere(ctx, account, name, q, t.fn.Version)
	if err != nil {
		return err
	}
	if rc := t.latest.ReservedConcurrency; rc != nil {
		if others+n > *rc {
			return lambdaapi.Errorf(lambdaapi.InvalidParameterValue,
				"Requested Provisioned Concurrency should not be greater than the reservedConcurrentExecution for function")
		}
	} else {
		limit, reserved, _, err := s.accountLimit(ctx, account, name)
		if err != nil {
			return err
		}
		if limit-(reserved+others+n) < s.cfg.MinUnreserved {
			return lambdaapi.Errorf(lambdaapi.InvalidParameterValue,
				"Requested Provisioned Concurrency decreases account's UnreservedConcurrentExecution below its minimum value of [%d].", s.cfg.MinUnreserved)
		}
	}
	c := store.ProvisionedConfig{AccountID: account, Function: name, Qualifier: q, Requested: n, LastModified: s.cfg.Now().UTC()}
	if err := s.cfg.Provisioned.PutProvisioned(ctx, c); err != nil {
		return err
	}
	if err := s.syncProvisioned(ctx, account, name); err != nil {
		return err
	}
	s.log.Info("provisioned concurrency set", "account", account, "function", name, "qualifier", q, "requested", n)
	out, err := s.provisionedView(ctx, c, false)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusAccepted, out)
}

// getProvisionedConcurrency is GetProvisionedConcurrencyConfig, or with
// List=ALL ListProvisionedConcurrencyConfigs (they share the path).
func (s *Server) getProvisionedConcurrency(w http.ResponseWriter, r *request) error {
	if strings.EqualFold(r.URL.Query().Get("List"), "ALL") {
		return s.listProvisionedConcurrency(w, r)
	}
	q := r.URL.Query().Get("Qualifier")
	if q == "" {
		return lambdaapi.Errorf(lambdaapi.InvalidParameterValue, "Qualifier is required for provisioned concurrency")
	}
	f, err := s.functionOf(r)
	if err != nil {
		return err
	}
	if s.cfg.Provisioned == nil {
		return provNotFound()
	}
	c, err := s.cfg.Provisioned.GetProvisioned(r.Context(), f.AccountID, f.Name, q)
	if errors.Is(err, store.ErrNotFound) {
		return provNotFound()
	}
	if err != nil {
		return err
	}
	out, err := s.provisionedView(r.Context(), c, false)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, out)
}

// functionOf finds the function named by {fn}, whatever the qualifier.
func (s *Server) functionOf(r *request) (store.Revision, error) {
	ref, err := s.parseRef(r)
	if err != nil {
		return store.Revision{}, err
	}
	f, err := s.cfg.Store.GetFunction(r.Context(), r.principal.AccountID, ref.Name)
	if errors.Is(err, store.ErrNotFound) {
		return store.Revision{}, s.notFound(r, ref.Name, "")
	}
	return f, err
}

func (s *Server) listProvisionedConcurrency(w http.ResponseWriter, r *request) error {
	max, after, err := listParams(r, 50)
	if err != nil {
		return err
	}
	f, err := s.functionOf(r)
	if err != nil {
		return err
	}
	var cs []store.ProvisionedConfig
	if s.cfg.Provisioned != nil {
		if cs, err = s.cfg.Provisioned.ListProvisioned(r.Context(), f.AccountID, f.Name); err != nil {
			return err
		}
	}
	out := struct {
		ProvisionedConcurrencyConfigs []provisionedConfig
		NextMarker                    *string `json:",omitempty"`
	}{ProvisionedConcurrencyConfigs: []provisionedConfig{}}
	last := ""
	for _, c := range cs {
		if after != "" && c.Qualifier <= after {
			continue
		}
		if len(out.ProvisionedConcurrencyConfigs) == max {
			out.NextMarker = marker(last)
			break
		}
		v, err := s.provisionedView(r.Context(), c, true)
		if err != nil {
			return err
		}
		out.ProvisionedConcurrencyConfigs = append(out.ProvisionedConcurrencyConfigs, v)
		last = c.Qualifier
	}
	return writeJSON(w, http.StatusOK, out)
}

func (s *Server) deleteProvisionedConcurrency(w http.ResponseWriter, r *request) error {
	q := r.URL.Query().Get("Qualifier")
	if q == "" {
		return lambdaapi.Errorf(lambdaapi.InvalidParameterValue, "Qualifier is required for provisioned concurrency")
	}
	ctx := r.Context()
	unlock := s.lockCode(r.principal.AccountID)
	defer unlock()
	f, err := s.functionOf(r)
	if err != nil {
		return err
	}
	if s.cfg.Provisioned == nil {
		return provNotFound()
	}
	if _, err := s.cfg.Provisioned.GetProvisioned(ctx, f.AccountID, f.Name, q); errors.Is(err, store.ErrNotFound) {
		return provNotFound()
	} else if err != nil {
		return err
	}
	if err := s.cfg.Provisioned.DeleteProvisioned(ctx, f.AccountID, f.Name, q); err != nil {
		return err
	}
	if err := s.syncProvisioned(ctx, f.AccountID, f.Name); err != nil {
		return err
	}
	s.log.Info("provisioned concurrency deleted", "account", f.AccountID, "function", f.Name, "qualifier", q)
	w.WriteHeader(http.StatusNoContent)
	return nil
}
