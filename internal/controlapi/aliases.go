package controlapi

import (
	"context"
	"errors"
	"maps"
	"net/http"
	"strconv"

	"github.com/emberfn/ember/internal/lambdaapi"
	"github.com/emberfn/ember/internal/store"
)

// Aliases name a version of a function ($LATEST or a published one) and
// may route a share of invocations to one other published version. Writes
// hold the account's code lock, so an alias never comes to point at a
// version being deleted.

func (s *Server) aliasConfig(a *store.Alias) lambdaapi.AliasConfiguration {
	c := lambdaapi.AliasConfiguration{
		AliasArn:        lambdaapi.QualifiedARN(s.cfg.Region, a.AccountID, a.Function, a.Name),
		Name:            a.Name,
		FunctionVersion: a.FunctionVersion,
		Description:     a.Description,
		RevisionId:      a.RevisionID,
	}
	if len(a.Weights) > 0 {
		c.RoutingConfig = &lambdaapi.AliasRoutingConfiguration{AdditionalVersionWeights: maps.Clone(a.Weights)}
	}
	return c
}

// checkVersionExists answers 404 unless version is $LATEST or a published
// version of the function.
func (s *Server) checkVersionExists(ctx context.Context, r *request, f *store.Function, version string) error {
	if version == lambdaapi.VersionLatest {
		return nil
	}
	_, err := s.cfg.Store.GetVersion(ctx, f.AccountID, f.Name, version)
	if errors.Is(err, store.ErrNotFound) {
		return s.notFound(r, f.Name, version)
	}
	return err
}

// checkRouting validates an alias's AdditionalVersionWeights against its
// FunctionVersion, as Lambda does.
func (s *Server) checkRouting(ctx context.Context, r *request, f *store.Function, primary string, weights map[string]float64) error {
	if len(weights) > 1 {
		return lambdaapi.Errorf(lambdaapi.InvalidParameterValue, "Number of items in AdditionalVersionWeights cannot be greater than 1")
	}
	for v, w := range weights {
		entry := "{" + v + "=" + strconv.FormatFloat(w, 'f', -1, 64) + "}"
		if w < 0 || w > 1 {
			return lambdaapi.Validationf(
				"Value '%s' at 'routingConfig.additionalVersionWeights' failed to satisfy constraint: Map value must satisfy constraint: [Member must have value less than or equal to 1.0, Member must have value greater than or equal to 0.0, Member must not be null]", entry)
		}
		if v == primary {
			return lambdaapi.Errorf(lambdaapi.InvalidParameterValue,
				"Invalid function version %s. Function version %s is already included in routing configuration.", v, v)
		}
		if primary == lambdaapi.VersionLatest {
			return lambdaapi.Errorf(lambdaapi.InvalidParameterValue, "$LATEST is not supported for an alias pointing to more than 1 version")
		}
		if !lambdaapi.IsVersionNumber(v) || len(v) > 1024 {
			return lambdaapi.Validationf(
				"Value '%s' at 'routingConfig.additionalVersionWeights' failed to satisfy constraint: Map keys must satisfy constraint: [Member must have length less than or equal to 1024, Member must have length greater than or equal to 1, Member must satisfy regular expression pattern: [0-9]+, Member must not be null]", entry)
		}
		if err := s.checkVersionExists(ctx, r, f, v); err != nil {
			return err
		}
	}
	return nil
}

func checkAliasDescription(d *string) error {
	if d != nil && len(*d) > lambdaapi.MaxDescription {
		return lambdaapi.Validationf(
			"Value at 'description' failed to satisfy constraint: Member must have length less than or equal to 256")
	}
	return nil
}

func (s *Server) aliasNotFound(r *request, f *store.Function, name, msg string) error {
	return lambdaapi.Errorf(lambdaapi.ResourceNotFound, "%s: %s", msg,
		lambdaapi.QualifiedARN(s.cfg.Region, f.AccountID, f.Name, name))
}

func (s *Server) createAlias(w http.ResponseWriter, r *request) error {
	var in lambdaapi.CreateAliasInput
	if err := decode(r, &in); err != nil {
		return err
	}
	if in.Name == nil {
		return lambdaapi.Validationf(
			"Value null at 'name' failed to satisfy constraint: Member must not be null")
	}
	if err := lambdaapi.CheckAliasName(*in.Name); err != nil {
		return err
	}
	if in.FunctionVersion == nil {
		return lambdaapi.Validationf(
			"Value null at 'functionVersion' failed to satisfy constraint: Member must not be null")
	}
	if err := lambdaapi.CheckFunctionVersion(*in.FunctionVersion); err != nil {
		return err
	}
	if err := checkAliasDescription(in.Description); err != nil {
		return err
	}
	ctx := r.Context()
	unlock := s.lockCode(r.principal.AccountID)
	defer unlock()
	f, err := s.resolve(r)
	if err != nil {
		return err
	}
	if err := s.checkVersionExists(ctx, r, &f.Function, *in.FunctionVersion); err != nil {
		return err
	}
	if _, err := s.cfg.Store.GetAlias(ctx, f.AccountID, f.Name, *in.Name); err == nil {
		return lambdaapi.Errorf(lambdaapi.ResourceConflict, "Alias already exists: %s",
			lambdaapi.QualifiedARN(s.cfg.Region, f.AccountID, f.Name, *in.Name))
	} else if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	a := store.Alias{
		AccountID: f.AccountID, Function: f.Name, Name: *in.Name, FunctionVersion: *in.FunctionVersion,
		RevisionID: lambdaapi.NewRequestID(),
	}
	if in.Description != nil {
		a.Description = *in.Description
	}
	if in.RoutingConfig != nil && len(in.RoutingConfig.AdditionalVersionWeights) > 0 {
		if err := s.checkRouting(ctx, r, &f.Function, a.FunctionVersion, in.RoutingConfig.AdditionalVersionWeights); err != nil {
			return err
		}
		a.Weights = maps.Clone(in.RoutingConfig.AdditionalVersionWeights)
	}
	if _, err := s.cfg.Store.CreateAlias(ctx, a); errors.Is(err, store.ErrExists) {
		return lambdaapi.Errorf(lambdaapi.ResourceConflict, "Alias already exists: %s",
			lambdaapi.QualifiedARN(s.cfg.Region, f.AccountID, f.Name, a.Name))
	} else if err != nil {
		return err
	}
	s.log.Info("alias created", "account", a.AccountID, "function", a.Function, "alias", a.Name, "version", a.FunctionVersion)
	return writeJSON(w, http.StatusCreated, s.aliasConfig(&a))
}

func (s *Server) getAlias(w http.ResponseWriter, r *request) error {
	name := r.PathValue("alias")
	if err := lambdaapi.CheckAliasName(name); err != nil {
		return err
	}
	f, err := s.resolve(r)
	if err != nil {
		return err
	}
	a, err := s.cfg.Store.GetAlias(r.Context(), f.AccountID, f.Name, name)
	if errors.Is(err, store.ErrNotFound) {
		return s.aliasNotFound(r, &f.Function, name, "Cannot find alias arn")
	}
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, s.aliasConfig(&a.Alias))
}

func (s *Server) updateAlias(w http.ResponseWriter, r *request) error {
	name := r.PathValue("alias")
	if err := lambdaapi.CheckAliasName(name); err != nil {
		return err
	}
	var in lambdaapi.UpdateAliasInput
	if err := decodeOptional(r, &in); err != nil {
		return err
	}
	if in.FunctionVersion != nil {
		if err := lambdaapi.CheckFunctionVersion(*in.FunctionVersion); err != nil {
			return err
		}
	}
	if err := checkAliasDescription(in.Description); err != nil {
		return err
	}
	ctx := r.Context()
	unlock := s.lockCode(r.principal.AccountID)
	defer unlock()
	for attempt := 0; ; attempt++ {
		f, err := s.resolve(r)
		if err != nil {
			return err
		}
		cur, err := s.cfg.Store.GetAlias(ctx, f.AccountID, f.Name, name)
		if errors.Is(err, store.ErrNotFound) {
			return s.aliasNotFound(r, &f.Function, name, "Alias not found")
		}
		if err != nil {
			return err
		}
		if in.RevisionId != nil && *in.RevisionId != "" && *in.RevisionId != cur.RevisionID {
			return revisionMismatch()
		}
		a := cur.Alias
		if in.FunctionVersion != nil {
			if err := s.checkVersionExists(ctx, r, &f.Function, *in.FunctionVersion); err != nil {
				return err
			}
			a.FunctionVersion = *in.FunctionVersion
		}
		if in.Description != nil {
			a.Description = *in.Description
		}
		if in.RoutingConfig != nil {
			a.Weights = maps.Clone(in.RoutingConfig.AdditionalVersionWeights)
			if len(a.Weights) == 0 {
				a.Weights = nil
			}
		}
		if len(a.Weights) > 0 {
			if err := s.checkRouting(ctx, r, &f.Function, a.FunctionVersion, a.Weights); err != nil {
				return err
			}
		}
		if err := s.checkAliasProvisioned(ctx, &a); err != nil {
			return err
		}
		a.RevisionID = lambdaapi.NewRequestID()
		if _, err := s.cfg.Store.UpdateAlias(ctx, a, cur.Rev); errors.Is(err, store.ErrConflict) && attempt < 5 {
			continue
		} else if errors.Is(err, store.ErrConflict) {
			return lambdaapi.Errorf(lambdaapi.ResourceConflict, "An update is in progress for resource: %s",
				lambdaapi.QualifiedARN(s.cfg.Region, a.AccountID, a.Function, a.Name))
		} else if err != nil {
			return err
		}
		if err := s.syncProvisioned(ctx, a.AccountID, a.Function); err != nil {
			s.log.Warn("provisioned concurrency not moved with its alias", "account", a.AccountID, "function", a.Function, "alias", a.Name, "err", err)
		}
		s.log.Info("alias updated", "account", a.AccountID, "function", a.Function, "alias", a.Name,
			"version", a.FunctionVersion, "weights", a.Weights)
		return writeJSON(w, http.StatusOK, s.aliasConfig(&a))
	}
}

// deleteAlias deletes an alias; one that does not exist is not an error
// (as Lambda), but the function must exist.
func (s *Server) deleteAlias(w http.ResponseWriter, r *request) error {
	name := r.PathValue("alias")
	if err := lambdaapi.CheckAliasName(name); err != nil {
		return err
	}
	unlock := s.lockCode(r.principal.AccountID)
	defer unlock()
	f, err := s.resolve(r)
	if err != nil {
		return err
	}
	if err := s.cfg.Store.DeleteAlias(r.Context(), f.AccountID, f.Name, name, 0); err != nil {
		return err
	}
	s.dropProvisioned(r.Context(), f.AccountID, f.Name, name)
	s.log.Info("alias deleted", "account", f.AccountID, "function", f.Name, "alias", name)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// listAliases is ListAliases, by name, optionally only the aliases whose
// FunctionVersion is the FunctionVersion parameter.
func (s *Server) listAliases(w http.ResponseWriter, r *request) error {
	max, after, err := listParams(r, 10000)
	if err != nil {
		return err
	}
	version := r.URL.Query().Get("FunctionVersion")
	if version != "" {
		if err := lambdaapi.CheckFunctionVersion(version); err != nil {
			return err
		}
	}
	f, err := s.resolve(r)
	if err != nil {
		return err
	}
	aliases, err := s.cfg.Store.ListAliases(r.Context(), f.AccountID, f.Name)
	if err != nil {
		return err
	}
	out := lambdaapi.ListAliasesOutput{Aliases: []lambdaapi.AliasConfiguration{}}
	for i := range aliases {
		a := &aliases[i]
		if (after != "" && a.Name <= after) || (version != "" && a.FunctionVersion != version) {
			continue
		}
		if len(out.Aliases) == max {
			out.NextMarker = marker(out.Aliases[len(out.Aliases)-1].Name)
			break
		}
		out.Aliases = append(out.Aliases, s.aliasConfig(a))
	}
	return writeJSON(w, http.StatusOK, out)
}
