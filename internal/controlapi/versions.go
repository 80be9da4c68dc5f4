package controlapi

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/emberfn/ember/internal/lambdaapi"
	"github.com/emberfn/ember/internal/store"
)

// Versions: PublishVersion takes an immutable snapshot of $LATEST's code
// and configuration under the next number; $LATEST records that number and
// the RevisionId it was published at, so a publish with nothing changed
// since returns the last version instead of making a new one. Every write
// here holds the account's code lock, which also serialises deletes.

// publish stores version f.LastVersion of the function, a snapshot of f
// (the $LATEST just written with that number). description, if set,
// replaces the function's.
func (s *Server) publish(ctx context.Context, f store.Function, description *string) (store.Function, error) {
	v := f
	v.Version = strconv.Itoa(f.LastVersion)
	v.Environment = cloneMap(f.Environment)
	v.Architectures = slices.Clone(f.Architectures)
	v.Layers = slices.Clone(f.Layers)
	v.RevisionID = lambdaapi.NewRequestID()
	v.LastModified = s.cfg.Now().UTC()
	v.ReservedConcurrency = nil // a property of the function, not of a version
	v.LastVersion, v.PublishedRevision = 0, ""
	if description != nil {
		v.Description = *description
	}
	if _, err := s.cfg.Store.CreateVersion(ctx, v); err != nil {
		return store.Function{}, err
	}
	s.log.Info("function version published", "account", v.AccountID, "function", v.Name, "version", v.Version, "code_sha256", v.CodeSHA256)
	return v, nil
}

func (s *Server) publishVersion(w http.ResponseWriter, r *request) error {
	var in lambdaapi.PublishVersionInput
	if err := decodeOptional(r, &in); err != nil {
		return err
	}
	if in.PublishTo != nil && *in.PublishTo != "" {
		return lambdaapi.Errorf(lambdaapi.InvalidParameterValue, "PublishTo is not supported by Ember: versions are published from $LATEST")
	}
	if in.Description != nil && len(*in.Description) > lambdaapi.MaxDescription {
		return lambdaapi.Validationf(
			"Value at 'description' failed to satisfy constraint: Member must have length less than or equal to 256")
	}
	ctx := r.Context()
	unlock := s.lockCode(r.principal.AccountID)
	defer unlock()
	for attempt := 0; ; attempt++ {
		cur, err := s.resolve(r)
		if err != nil {
			return err
		}
		if in.RevisionId != nil && *in.RevisionId != "" && *in.RevisionId != cur.RevisionID {
			return revisionMismatch()
		}
		sum, _ := hex.DecodeString(cur.CodeSHA256)
		if have := base64.StdEncoding.EncodeToString(sum); in.CodeSha256 != nil && *in.CodeSha256 != "" && *in.CodeSha256 != have {
			return lambdaapi.Errorf(lambdaapi.InvalidParameterValue,
				"CodeSHA256 (%s) is different from current CodeSHA256 in $LATEST (%s). Please try again with the CodeSHA256 in $LATEST.", *in.CodeSha256, have)
		}
		if cur.LastVersion > 0 && cur.PublishedRevision == cur.RevisionID {
			// Nothing changed since the last version: that one is the
			// answer (unless it was deleted since).
			v, err := s.cfg.Store.GetVersion(ctx, cur.AccountID, cur.Name, strconv.Itoa(cur.LastVersion))
			if err == nil {
				return writeJSON(w, http.StatusCreated, s.configuration(&v, v.Version))
			}
			if !errors.Is(err, store.ErrNotFound) {
				return err
			}
		}
		// As Lambda, publishing gives $LATEST a new RevisionId.
		f := cur.Function
		f.LastVersion++
		f.RevisionID = lambdaapi.NewRequestID()
		f.PublishedRevision = f.RevisionID
		if _, err := s.cfg.Store.UpdateFunction(ctx, f, cur.Rev); errors.Is(err, store.ErrConflict) && attempt < 5 {
			continue
		} else if errors.Is(err, store.ErrConflict) {
			return lambdaapi.Errorf(lambdaapi.ResourceConflict,
				"An update is in progress for resource: %s", lambdaapi.FunctionARN(s.cfg.Region, f.AccountID, f.Name))
		} else if err != nil {
			return err
		}
		v, err := s.publish(ctx, f, in.Description)
		if err != nil {
			return err
		}
		return writeJSON(w, http.StatusCreated, s.configuration(&v, v.Version))
	}
}

// listVersions is ListVersionsByFunction: $LATEST, then the published
// versions in number order, each with its qualified ARN.
func (s *Server) listVersions(w http.ResponseWriter, r *request) error {
	max, after, err := listParams(r, 10000)
	if err != nil {
		return err
	}
	cur, err := s.resolve(r)
	if err != nil {
		return err
	}
	versions, err := s.cfg.Store.ListVersions(r.Context(), cur.AccountID, cur.Name)
	if err != nil {
		return err
	}
	all := append([]store.Function{cur.Function}, versions...)
	start := 0
	if after != "" {
		// The marker is the last version listed; resume after it even if
		// it was deleted meanwhile.
		start = len(all)
		for i, f := range all {
			if versionAfter(f.VersionName(), after) {
				start = i
				break
			}
		}
	}
	out := lambdaapi.ListVersionsByFunctionOutput{Versions: []lambdaapi.FunctionConfiguration{}}
	for _, f := range all[start:] {
		if len(out.Versions) == max {
			out.NextMarker = marker(out.Versions[len(out.Versions)-1].Version)
			break
		}
		out.Versions = append(out.Versions, s.configuration(&f, f.VersionName()))
	}
	return writeJSON(w, http.StatusOK, out)
}

// deleteVersion deletes one published version, unless an alias routes to
// it. A version that does not exist is not an error (as Lambda).
func (s *Server) deleteVersion(ctx context.Context, f *store.Function, version string) error {
	aliases, err := s.cfg.Store.ListAliases(ctx, f.AccountID, f.Name)
	if err != nil {
		return err
	}
	var users []string
	for _, a := range aliases {
		if a.References(version) {
			users = append(users, a.Name)
		}
	}
	if len(users) > 0 {
		return lambdaapi.Errorf(lambdaapi.ResourceConflict,
			"Unable to delete version because the following aliases reference it: [%s]", strings.Join(users, ", "))
	}
	v, err := s.cfg.Store.GetVersion(ctx, f.AccountID, f.Name, version)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := s.cfg.Store.DeleteVersion(ctx, f.AccountID, f.Name, version); err != nil {
		return err
	}
	s.dropProvisioned(ctx, f.AccountID, f.Name, version)
	s.dropCodeIfUnused(ctx, f.AccountID, v.CodeSHA256)
	s.dropLayersIfUnused(ctx, f.AccountID, v.Layers, nil)
	s.log.Info("function version deleted", "account", f.AccountID, "function", f.Name, "version", version)
	return nil
}

// deleteVersionsAndAliases deletes every alias and published version of a
// function name, and the packages nothing else uses any more. The caller
// holds the account's code lock.
func (s *Server) deleteVersionsAndAliases(ctx context.Context, account, name string) error {
	s.dropProvisioned(ctx, account, name, "")
	aliases, err := s.cfg.Store.ListAliases(ctx, account, name)
	if err != nil {
		return err
	}
	for _, a := range aliases {
		if err := s.cfg.Store.DeleteAlias(ctx, account, name, a.Name, 0); err != nil {
			return err
		}
	}
	versions, err := s.cfg.Store.ListVersions(ctx, account, name)
	if err != nil {
		return err
	}
	shas := map[string]bool{}
	for _, v := range versions {
		if err := s.cfg.Store.DeleteVersion(ctx, account, name, v.Version); err != nil {
			return err
		}
		shas[v.CodeSHA256] = true
		for _, l := range v.Layers {
			shas[l.CodeSHA256] = true
		}
	}
	for sha := range shas {
		s.dropCodeIfUnused(ctx, account, sha)
	}
	return nil
}

// versionAfter reports whether version v is listed after version m
// ($LATEST first, then by number).
func versionAfter(v, m string) bool {
	if v == lambdaapi.VersionLatest {
		return false
	}
	if m == lambdaapi.VersionLatest {
		return true
	}
	a, _ := strconv.Atoi(v)
	b, _ := strconv.Atoi(m)
	return a > b
}

// listParams reads MaxItems (1 to hi, default 50) and Marker (an opaque
// token: the last item listed, base64url) of a list request.
func listParams(r *request, hi int) (max int, after string, err error) {
	q := r.URL.Query()
	max = 50
	if v := q.Get("MaxItems"); v != "" {
		if max, err = lambdaapi.ParseMaxItems(v, hi); err != nil {
			return 0, "", err
		}
	}
	if m := q.Get("Marker"); m != "" {
		b, err := base64.RawURLEncoding.DecodeString(m)
		if err != nil || len(b) == 0 || len(b) > 1024 {
			return 0, "", lambdaapi.Errorf(lambdaapi.InvalidParameterValue, "Invalid Marker")
		}
		after = string(b)
	}
	return max, after, nil
}

func marker(last string) *string {
	m := base64.RawURLEncoding.EncodeToString([]byte(last))
	return &m
}

// decodeOptional is decode for requests whose body may be empty.
func decodeOptional(r *request, v any) error {
	if len(r.body) == 0 {
		return nil
	}
	return decode(r, v)
}
