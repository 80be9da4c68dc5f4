package controlapi

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"maps"
	"net/http"
	"slices"
	"strings"

	"github.com/emberfn/ember/internal/codepkg"
	"github.com/emberfn/ember/internal/lambdaapi"
	"github.com/emberfn/ember/internal/store"
)

// parseRef parses the {fn} path value and the Qualifier query parameter
// into one reference. Another account's or region's ARN is answered as not
// found: accounts never see each other's functions.
func (s *Server) parseRef(r *request) (lambdaapi.FunctionRef, error) {
	ref, err := lambdaapi.ParseFunctionRef(r.PathValue("fn"))
	if err != nil {
		return ref, err
	}
	q := r.URL.Query().Get("Qualifier")
	if q != "" {
		if err := lambdaapi.CheckQualifier(q); err != nil {
			return ref, err
		}
	}
	if ref.Qualifier != "" && q != "" && q != ref.Qualifier {
		return ref, lambdaapi.Errorf(lambdaapi.InvalidParameterValue,
			"The derived qualifier from the function name does not match the specified qualifier.")
	}
	if q != "" {
		ref.Qualifier = q
	}
	if (ref.Account != "" && ref.Account != r.principal.AccountID) ||
		(ref.Region != "" && ref.Region != s.cfg.Region) {
		return ref, s.notFound(r, ref.Name, ref.Qualifier)
	}
	return ref, nil
}

// notFound is Lambda's answer for a function, version or alias that does
// not exist.
func (s *Server) notFound(r *request, name, qualifier string) error {
	return lambdaapi.Errorf(lambdaapi.ResourceNotFound, "Function not found: %s",
		lambdaapi.QualifiedARN(s.cfg.Region, r.principal.AccountID, name, qualifier))
}

// resolve finds the caller's function's $LATEST, for the operations that
// act on it alone: a qualifier other than $LATEST is not found.
func (s *Server) resolve(r *request) (store.Revision, error) {
	ref, err := s.parseRef(r)
	if err != nil {
		return store.Revision{}, err
	}
	if ref.Qualifier != "" && ref.Qualifier != lambdaapi.VersionLatest {
		return store.Revision{}, s.notFound(r, ref.Name, ref.Qualifier)
	}
	f, err := s.cfg.Store.GetFunction(r.Context(), r.principal.AccountID, ref.Name)
	if errors.Is(err, store.ErrNotFound) {
		return store.Revision{}, s.notFound(r, ref.Name, ref.Qualifier)
	}
	return f, err
}

// target is what a possibly qualified function reference names.
type target struct {
	latest store.Revision // the function's $LATEST, as read
	// fn is what the reference names: $LATEST, a published version, or
	// the version an alias points to.
	fn        store.Function
	qualifier string // as given: "", "$LATEST", a number or an alias
}

// resolveTarget finds the function, version or alias named by the {fn}
// path value and the Qualifier query parameter.
func (s *Server) resolveTarget(r *request) (target, error) {
	ref, err := s.parseRef(r)
	if err != nil {
		return target{}, err
	}
	ctx, account := r.Context(), r.principal.AccountID
	latest, err := s.cfg.Store.GetFunction(ctx, account, ref.Name)
	if errors.Is(err, store.ErrNotFound) {
		return target{}, s.notFound(r, ref.Name, ref.Qualifier)
	}
	if err != nil {
		return target{}, err
	}
	t := target{latest: latest, fn: latest.Function, qualifier: ref.Qualifier}
	version := ref.Qualifier
	if version != "" && version != lambdaapi.VersionLatest && !lambdaapi.IsVersionNumber(version) {
		a, err := s.cfg.Store.GetAlias(ctx, account, ref.Name, version)
		if errors.Is(err, store.ErrNotFound) {
			return target{}, s.notFound(r, ref.Name, ref.Qualifier)
		}
		if err != nil {
			return target{}, err
		}
		version = a.FunctionVersion
	}
	if version != "" && version != lambdaapi.VersionLatest {
		v, err := s.cfg.Store.GetVersion(ctx, account, ref.Name, version)
		if errors.Is(err, store.ErrNotFound) {
			return target{}, s.notFound(r, ref.Name, version)
		}
		if err != nil {
			return target{}, err
		}
		t.fn = v
	}
	return t, nil
}

func (s *Server) createFunction(w http.ResponseWriter, r *request) error {
	var in lambdaapi.CreateFunctionInput
	if err := decode(r, &in); err != nil {
		return err
	}
	ref, err := lambdaapi.ParseFunctionRef(in.FunctionName)
	if err != nil {
		return err
	}
	if ref.Qualifier != "" || (ref.Account != "" && ref.Account != r.principal.AccountID) ||
		(ref.Region != "" && ref.Region != s.cfg.Region) {
		return lambdaapi.Errorf(lambdaapi.InvalidParameterValue, "FunctionName must name a function of your account without a qualifier")
	}
	if in.PackageType != "" && in.PackageType != lambdaapi.PackageTypeZip {
		return lambdaapi.Errorf(lambdaapi.InvalidParameterValue, "PackageType %s is not supported; Ember runs Zip packages", in.PackageType)
	}
	if in.VpcConfig != nil && (len(in.VpcConfig.SubnetIds) > 0 || len(in.VpcConfig.SecurityGroupIds) > 0) {
		return lambdaapi.Errorf(lambdaapi.InvalidParameterValue, "VpcConfig is not supported by Ember")
	}
	f := store.Function{
		AccountID:        r.principal.AccountID,
		Name:             ref.Name,
		Runtime:          in.Runtime,
		Handler:          in.Handler,
		Role:             in.Role,
		MemorySize:       lambdaapi.DefaultMemorySize,
		Timeout:          lambdaapi.DefaultTimeout,
		EphemeralStorage: lambdaapi.DefaultEphemeralStorage,
		Architectures:    []string{s.arch},
	}
	upd := lambdaapi.UpdateFunctionConfigurationInput{
		Description: in.Description, Timeout: in.Timeout, MemorySize: in.MemorySize,
		Environment: in.Environment, EphemeralStorage: in.EphemeralStorage,
	}
	if err := s.applyConfig(&f, &upd); err != nil {
		return err
	}
	if in.DeadLetterConfig != nil {
		if f.DeadLetterTarget, err = s.deadLetterTarget(r.Context(), f.AccountID, in.DeadLetterConfig); err != nil {
			return err
		}
	}
	if f.Runtime == "" {
		return lambdaapi.Errorf(lambdaapi.InvalidParameterValue, "Runtime is required for a Zip package")
	}
	if err := s.checkRuntime(f.Runtime); err != nil {
		return err
	}
	if err := s.checkArchitectures(in.Architectures); err != nil {
		return err
	}
	if in.Code == nil || (len(in.Code.ZipFile) == 0 && in.Code.S3Bucket == nil && in.Code.ImageUri == nil) {
		return lambdaapi.Errorf(lambdaapi.InvalidParameterValue, "Code.ZipFile is required")
	}
	if in.Code.S3Bucket != nil || in.Code.S3Key != nil || in.Code.ImageUri != nil {
		return lambdaapi.Errorf(lambdaapi.InvalidParameterValue, "Ember takes code as Code.ZipFile only (no S3 locations or images)")
	}
	pkg, err := s.checkPackage(in.Code.ZipFile, f.Runtime)
	if err != nil {
		return err
	}
	setCode(&f, pkg)
	f.RevisionID = lambdaapi.NewRequestID()
	f.LastModified = s.cfg.Now().UTC()
	if in.Publish {
		f.LastVersion, f.PublishedRevision = 1, f.RevisionID
	}

	unlock := s.lockCode(f.AccountID)
	defer unlock()
	// Layers are looked up under the code lock: none of them can be
	// deleted before the function that uses it is stored.
	if len(in.Layers) > 0 {
		if f.Layers, err = s.functionLayers(r.Context(), f.AccountID, in.Layers); err != nil {
			return err
		}
	}
	if err := checkTotalSize(f.UnzippedSize, f.Layers); err != nil {
		return err
	}
	if _, err := s.cfg.Store.GetFunction(r.Context(), f.AccountID, f.Name); err == nil {
		return s.conflict(f.Name)
	} else if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	// Versions and aliases a deleted function of that name left behind
	// (a delete cut short) must not come back with the new function.
	if err := s.deleteVersionsAndAliases(r.Context(), f.AccountID, f.Name); err != nil {
		return err
	}
	if err := s.cfg.Store.PutCode(r.Context(), f.AccountID, f.CodeSHA256, in.Code.ZipFile); err != nil {
		return err
	}
	if _, err := s.cfg.Store.CreateFunction(r.Context(), f); err != nil {
		if errors.Is(err, store.ErrExists) {
			return s.conflict(f.Name)
		}
		s.dropCodeIfUnused(r.Context(), f.AccountID, f.CodeSHA256)
		return err
	}
	s.log.Info("function created", "account", f.AccountID, "function", f.Name, "code_sha256", f.CodeSHA256)
	if in.Publish {
		// As Lambda: the answer describes version 1, with the
		// unqualified ARN.
		v, err := s.publish(r.Context(), f, nil)
		if err != nil {
			return err
		}
		return writeJSON(w, http.StatusCreated, s.configuration(&v, ""))
	}
	return writeJSON(w, http.StatusCreated, s.configuration(&f, ""))
}

func (s *Server) conflict(name string) error {
	return lambdaapi.Errorf(lambdaapi.ResourceConflict, "Function already exist: %s", name)
}

func (s *Server) getFunction(w http.ResponseWriter, r *request) error {
	t, err := s.resolveTarget(r)
	if err != nil {
		return err
	}
	out := lambdaapi.GetFunctionOutput{
		Configuration: s.configuration(&t.fn, t.qualifier),
		Code: lambdaapi.FunctionCodeLocation{
			RepositoryType: "S3",
			Location:       s.codeURL(r.Request, t.fn.AccountID, t.fn.CodeSHA256),
		},
	}
	if n := t.latest.ReservedConcurrency; n != nil {
		out.Concurrency = &lambdaapi.Concurrency{ReservedConcurrentExecutions: n}
	}
	return writeJSON(w, http.StatusOK, out)
}

func (s *Server) getFunctionConfiguration(w http.ResponseWriter, r *request) error {
	t, err := s.resolveTarget(r)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, s.configuration(&t.fn, t.qualifier))
}

func (s *Server) listFunctions(w http.ResponseWriter, r *request) error {
	q := r.URL.Query()
	switch v := q.Get("FunctionVersion"); v {
	case "":
	case "ALL":
		return lambdaapi.Errorf(lambdaapi.InvalidParameterValue,
			"FunctionVersion=ALL is not supported by Ember yet; list a function's versions with ListVersionsByFunction")
	default:
		return lambdaapi.Validationf(
			"Value '%s' at 'functionVersion' failed to satisfy constraint: Member must satisfy enum value set: [ALL]", v)
	}
	max := 50
	if v := q.Get("MaxItems"); v != "" {
		n, err := lambdaapi.ParseMaxItems(v, 10000)
		if err != nil {
			return err
		}
		max = n
	}
	after := ""
	if m := q.Get("Marker"); m != "" {
		b, err := base64.RawURLEncoding.DecodeString(m)
		if err != nil || !lambdaapi.ValidName(string(b)) {
			return lambdaapi.Errorf(lambdaapi.InvalidParameterValue, "Invalid Marker")
		}
		after = string(b)
	}
	fs, more, err := s.cfg.Store.ListFunctions(r.Context(), r.principal.AccountID, after, max)
	if err != nil {
		return err
	}
	out := lambdaapi.ListFunctionsOutput{Functions: make([]lambdaapi.FunctionConfiguration, 0, len(fs))}
	for i := range fs {
		out.Functions = append(out.Functions, s.configuration(&fs[i], ""))
	}
	if more && len(fs) > 0 {
		m := base64.RawURLEncoding.EncodeToString([]byte(fs[len(fs)-1].Name))
		out.NextMarker = &m
	}
	return writeJSON(w, http.StatusOK, out)
}

func (s *Server) updateFunctionCode(w http.ResponseWriter, r *request) error {
	var in lambdaapi.UpdateFunctionCodeInput
	if err := decode(r, &in); err != nil {
		return err
	}
	if in.S3Bucket != nil || in.S3Key != nil || in.ImageUri != nil {
		return lambdaapi.Errorf(lambdaapi.InvalidParameterValue, "Ember takes code as ZipFile only (no S3 locations or images)")
	}
	if len(in.ZipFile) == 0 {
		return lambdaapi.Errorf(lambdaapi.InvalidParameterValue, "ZipFile is required")
	}
	if err := s.checkArchitectures(in.Architectures); err != nil {
		return err
	}
	unlock := s.lockCode(r.principal.AccountID)
	defer unlock()
	var stored string
	publish := in.Publish && !in.DryRun
	f, old, err := s.modifyRev(r, modification{revisionID: in.RevisionId, write: !in.DryRun, newRevision: true, publish: publish}, func(f *store.Function) error {
		pkg, err := s.checkPackage(in.ZipFile, f.Runtime)
		if err != nil {
			return err
		}
		if err := checkTotalSize(pkg.UnzippedSize, f.Layers); err != nil {
			return err
		}
		if in.DryRun {
			return nil
		}
		if sha := hex.EncodeToString(pkg.SHA256[:]); stored != sha {
			if err := s.cfg.Store.PutCode(r.Context(), f.AccountID, sha, in.ZipFile); err != nil {
				return err
			}
			stored = sha
		}
		setCode(f, pkg)
		return nil
	})
	if err != nil {
		if stored != "" {
			s.dropCodeIfUnused(r.Context(), r.principal.AccountID, stored)
		}
		return err
	}
	if old.CodeSHA256 != f.CodeSHA256 {
		s.dropCodeIfUnused(r.Context(), f.AccountID, old.CodeSHA256)
	}
	if publish {
		// As Lambda: the answer describes the new version, with its
		// qualified ARN.
		v, err := s.publish(r.Context(), f, nil)
		if err != nil {
			return err
		}
		return writeJSON(w, http.StatusOK, s.configuration(&v, v.Version))
	}
	return writeJSON(w, http.StatusOK, s.configuration(&f, ""))
}

func (s *Server) updateFunctionConfiguration(w http.ResponseWriter, r *request) error {
	var in lambdaapi.UpdateFunctionConfigurationInput
	if err := decode(r, &in); err != nil {
		return err
	}
	deadLetter := ""
	if in.DeadLetterConfig != nil {
		var err error
		if deadLetter, err = s.deadLetterTarget(r.Context(), r.principal.AccountID, in.DeadLetterConfig); err != nil {
			return err
		}
	}
	var layers []store.FunctionLayer
	if in.Layers != nil {
		// Under the code lock, as CreateFunction, so that no layer the
		// function is given can be deleted before it is stored.
		unlock := s.lockCode(r.principal.AccountID)
		defer unlock()
		var err error
		if layers, err = s.functionLayers(r.Context(), r.principal.AccountID, in.Layers); err != nil {
			return err
		}
	}
	f, old, err := s.modify(r, in.RevisionId, func(f *store.Function) error {
		if in.Runtime != nil {
			if err := s.checkRuntime(*in.Runtime); err != nil {
				return err
			}
			if s.cfg.Runtimes[*in.Runtime] && !s.cfg.Runtimes[f.Runtime] {
				return lambdaapi.Errorf(lambdaapi.InvalidParameterValue,
					"Runtime %s needs a package with a bootstrap; update the code first", *in.Runtime)
			}
			f.Runtime = *in.Runtime
		}
		if in.Handler != nil {
			f.Handler = *in.Handler
		}
		if in.Role != nil {
			f.Role = *in.Role
		}
		if in.DeadLetterConfig != nil {
			f.DeadLetterTarget = deadLetter
		}
		if in.Layers != nil {
			f.Layers = slices.Clone(layers)
			if len(f.Layers) == 0 {
				f.Layers = nil
			}
			if err := checkTotalSize(f.UnzippedSize, f.Layers); err != nil {
				return err
			}
		}
		return s.applyConfig(f, &in)
	}, true)
	if err != nil {
		return err
	}
	if in.Layers != nil {
		// A layer version deleted meanwhile keeps its content while
		// functions use it: this one may have been the last.
		s.dropLayersIfUnused(r.Context(), f.AccountID, old.Layers, f.Layers)
	}
	return writeJSON(w, http.StatusOK, s.configuration(&f, ""))
}

// modify reads the function, checks the RevisionId precondition, applies
// change and writes the result if write is set, retrying a concurrent
// change. It returns the new and the old function.
func (s *Server) modify(r *request, revisionID string, change func(*store.Function) error, write bool) (store.Function, store.Function, error) {
	return s.modifyRev(r, modification{revisionID: revisionID, write: write, newRevision: true}, change)
}

// modification says how modifyRev changes $LATEST.
type modification struct {
	revisionID string // the RevisionId precondition ("" if none)
	write      bool   // false: check and compute only (a dry run)
	// newRevision false keeps RevisionId and LastModified (a change that
	// is neither code nor configuration).
	newRevision bool
	// publish takes the next version number in the same write; the
	// caller then stores the version with publish.
	publish bool
}

// modifyRev is modify, as m says.
func (s *Server) modifyRev(r *request, m modification, change func(*store.Function) error) (store.Function, store.Function, error) {
	for attempt := 0; ; attempt++ {
		cur, err := s.resolve(r)
		if err != nil {
			return store.Function{}, store.Function{}, err
		}
		if m.revisionID != "" && m.revisionID != cur.RevisionID {
			return store.Function{}, store.Function{}, revisionMismatch()
		}
		old := cur.Function
		f := cur.Function
		f.Environment = cloneMap(old.Environment)
		f.Layers = slices.Clone(old.Layers)
		if err := change(&f); err != nil {
			return store.Function{}, store.Function{}, err
		}
		if !m.write {
			return f, old, nil
		}
		if m.newRevision {
			f.RevisionID = lambdaapi.NewRequestID()
			f.LastModified = s.cfg.Now().UTC()
		}
		if m.publish {
			f.LastVersion++
			f.PublishedRevision = f.RevisionID
		}
		_, err = s.cfg.Store.UpdateFunction(r.Context(), f, cur.Rev)
		if errors.Is(err, store.ErrConflict) && attempt < 5 {
			continue
		}
		if errors.Is(err, store.ErrConflict) {
			return store.Function{}, store.Function{}, lambdaapi.Errorf(lambdaapi.ResourceConflict,
				"An update is in progress for resource: %s", lambdaapi.FunctionARN(s.cfg.Region, f.AccountID, f.Name))
		}
		if err != nil {
			return store.Function{}, store.Function{}, err
		}
		s.log.Info("function updated", "account", f.AccountID, "function", f.Name, "revision", f.RevisionID)
		return f, old, nil
	}
}

func revisionMismatch() error {
	return lambdaapi.Errorf(lambdaapi.PreconditionFailed,
		"The Revision Id provided does not match the latest Revision Id. Call the GetFunction/GetAlias API to retrieve the latest Revision Id")
}

// deleteFunction deletes a function with all its versions and aliases, or
// (with a version number as qualifier) one published version.
func (s *Server) deleteFunction(w http.ResponseWriter, r *request) error {
	ref, err := s.parseRef(r)
	if err != nil {
		return err
	}
	switch q := ref.Qualifier; {
	case q == lambdaapi.VersionLatest:
		return lambdaapi.Errorf(lambdaapi.InvalidParameterValue, "$LATEST version cannot be deleted without deleting the function.")
	case q != "" && !lambdaapi.IsVersionNumber(q):
		return lambdaapi.Errorf(lambdaapi.InvalidParameterValue, "Deletion of aliases is not currently supported.")
	}
	ctx, account := r.Context(), r.principal.AccountID
	unlock := s.lockCode(account)
	defer unlock()
	f, err := s.cfg.Store.GetFunction(ctx, account, ref.Name)
	if errors.Is(err, store.ErrNotFound) {
		return s.notFound(r, ref.Name, "")
	}
	if err != nil {
		return err
	}
	if ref.Qualifier != "" {
		if err := s.deleteVersion(ctx, &f.Function, ref.Qualifier); err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	// $LATEST goes first: once it is gone the function, its versions and
	// its aliases answer 404 everywhere, even if the rest of the delete
	// is cut short (CreateFunction sweeps up what is left).
	if err := s.cfg.Store.DeleteFunction(ctx, f.AccountID, f.Name, f.Rev); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return lambdaapi.Errorf(lambdaapi.ResourceConflict, "The function changed while it was being deleted; retry")
		}
		return err
	}
	if err := s.deleteVersionsAndAliases(ctx, f.AccountID, f.Name); err != nil {
		s.log.Warn("versions or aliases of a deleted function left behind", "account", f.AccountID, "function", f.Name, "err", err)
	}
	s.dropCodeIfUnused(ctx, f.AccountID, f.CodeSHA256)
	s.dropLayersIfUnused(ctx, f.AccountID, f.Layers, nil)
	s.log.Info("function deleted", "account", f.AccountID, "function", f.Name)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// dropCodeIfUnused deletes a package no function of the account uses any
// more. A failure only leaves an orphan behind, so it is logged.
func (s *Server) dropCodeIfUnused(ctx context.Context, account, sha string) {
	used, err := s.cfg.Store.CodeInUse(ctx, account, sha)
	if err == nil && !used {
		err = s.cfg.Store.DeleteCode(ctx, account, sha)
	}
	if err != nil {
		s.log.Warn("code package left behind", "account", account, "code_sha256", sha, "err", err)
	}
}

// applyConfig validates and applies the settings common to create and
// update.
func (s *Server) applyConfig(f *store.Function, in *lambdaapi.UpdateFunctionConfigurationInput) error {
	if in.Description != nil {
		if len(*in.Description) > lambdaapi.MaxDescription {
			return lambdaapi.Validationf(
				"Value at 'description' failed to satisfy constraint: Member must have length less than or equal to 256")
		}
		f.Description = *in.Description
	}
	if in.Timeout != nil {
		if *in.Timeout < lambdaapi.MinTimeout || *in.Timeout > lambdaapi.MaxTimeout {
			return lambdaapi.Validationf(
				"Value '%d' at 'timeout' failed to satisfy constraint: Member must have value %s", *in.Timeout,
				lambdaapi.Bound(*in.Timeout, lambdaapi.MinTimeout, lambdaapi.MaxTimeout))
		}
		f.Timeout = *in.Timeout
	}
	if in.MemorySize != nil {
		if *in.MemorySize < lambdaapi.MinMemory || *in.MemorySize > lambdaapi.MaxMemory {
			return lambdaapi.Validationf(
				"Value '%d' at 'memorySize' failed to satisfy constraint: Member must have value %s", *in.MemorySize,
				lambdaapi.Bound(*in.MemorySize, lambdaapi.MinMemory, lambdaapi.MaxMemory))
		}
		f.MemorySize = *in.MemorySize
	}
	if in.EphemeralStorage != nil {
		if in.EphemeralStorage.Size < lambdaapi.MinEphemeral || in.EphemeralStorage.Size > lambdaapi.MaxEphemeral {
			return lambdaapi.Validationf(
				"Value '%d' at 'ephemeralStorage.size' failed to satisfy constraint: Member must have value %s", in.EphemeralStorage.Size,
				lambdaapi.Bound(in.EphemeralStorage.Size, lambdaapi.MinEphemeral, lambdaapi.MaxEphemeral))
		}
		f.EphemeralStorage = in.EphemeralStorage.Size
	}
	if len(f.Handler) > 128 {
		return lambdaapi.Validationf(
			"Value at 'handler' failed to satisfy constraint: Member must have length less than or equal to 128")
	}
	if f.Role != "" && !lambdaapi.RoleARNValid(f.Role) {
		return lambdaapi.Validationf(
			"Value '%s' at 'role' failed to satisfy constraint: Member must satisfy regular expression pattern: arn:(aws[a-zA-Z-]*)?:iam::\\d{12}:role/?[a-zA-Z_0-9+=,.@\\-_/]+", f.Role)
	}
	// Last: the environment's checks are Lambda's own (reserved names,
	// 4 KB) but for the names' pattern, and AWS checks every constraint
	// of the API model before Lambda's own.
	if in.Environment != nil {
		if err := lambdaapi.ValidateEnvironment(in.Environment.Variables); err != nil {
			return err
		}
		f.Environment = cloneMap(in.Environment.Variables)
	}
	return nil
}

// RuntimeCatalog tells the control API about the runtimes Ember knows
// beyond those this host serves (Config.Runtimes): a known runtime the host
// cannot serve is refused with what the host lacks, an unknown one with
// Lambda's enum message listing every runtime Ember knows.
type RuntimeCatalog struct {
	// Known is every runtime name Ember knows, served here or not.
	Known []string
	// Unavailable says what this host lacks to serve a known runtime ("" if
	// nothing); the message must not need more than the runtime's name.
	Unavailable func(name string) string
}

// checkRuntime refuses a runtime this host does not serve: a runtime Ember
// knows with what the host lacks for it (its interpreter), any other name
// with Lambda's enum message.
func (s *Server) checkRuntime(rt string) error {
	if _, ok := s.cfg.Runtimes[rt]; ok {
		return nil
	}
	cat := s.cfg.RuntimeCatalog
	if cat.Unavailable != nil && slices.Contains(cat.Known, rt) {
		if msg := cat.Unavailable(rt); msg != "" {
			return lambdaapi.Errorf(lambdaapi.InvalidParameterValue, "%s", msg)
		}
	}
	// Lambda's own check (not the request layer's): an
	// InvalidParameterValueException, whose message also allows a
	// runtime's ARN.
	return lambdaapi.Errorf(lambdaapi.InvalidParameterValue,
		"Value %s at 'runtime' failed to satisfy constraint: Member must satisfy enum value set: %s or be a valid ARN",
		truncate(rt, 64), s.runtimeList(cat.Known))
}

func (s *Server) checkArchitectures(archs []string) error {
	if len(archs) == 0 {
		return nil
	}
	// The API model's constraints first (one value, of the enum), then
	// what this host serves.
	list := "[" + truncate(strings.Join(archs, ", "), 64) + "]"
	if len(archs) > 1 {
		return lambdaapi.Validationf(
			"Value '%s' at 'architectures' failed to satisfy constraint: Member must have length less than or equal to 1", list)
	}
	if archs[0] != "x86_64" && archs[0] != "arm64" {
		return lambdaapi.Validationf(
			"Value '%s' at 'architectures' failed to satisfy constraint: Member must satisfy constraint: [Member must satisfy enum value set: [x86_64, arm64], Member must not be null]", list)
	}
	if archs[0] != s.arch {
		return lambdaapi.Errorf(lambdaapi.InvalidParameterValue,
			"Architectures %v: this Ember host runs %s functions only", archs, s.arch)
	}
	return nil
}

// checkPackage validates a zip for the runtime.
func (s *Server) checkPackage(zip []byte, runtime string) (*codepkg.Package, error) {
	pkg, err := codepkg.Validate(zip, codepkg.DefaultLimits(), s.cfg.Runtimes[runtime])
	if errors.Is(err, codepkg.ErrTooLarge) {
		return nil, lambdaapi.Errorf(lambdaapi.RequestTooLarge, "%s", err.Error())
	}
	if err != nil {
		return nil, lambdaapi.Errorf(lambdaapi.InvalidParameterValue, "%s", err.Error())
	}
	return pkg, nil
}

func setCode(f *store.Function, pkg *codepkg.Package) {
	f.CodeSHA256 = hex.EncodeToString(pkg.SHA256[:])
	f.CodeSize = pkg.Size
	f.UnzippedSize = pkg.UnzippedSize
}

// configuration is Lambda's description of a stored function ($LATEST or
// a published version); its FunctionArn is qualified by qualifier (none
// if "").
func (s *Server) configuration(f *store.Function, qualifier string) lambdaapi.FunctionConfiguration {
	sum, _ := hex.DecodeString(f.CodeSHA256)
	c := lambdaapi.FunctionConfiguration{
		FunctionName:     f.Name,
		FunctionArn:      lambdaapi.QualifiedARN(s.cfg.Region, f.AccountID, f.Name, qualifier),
		Runtime:          f.Runtime,
		Role:             f.Role,
		Handler:          f.Handler,
		CodeSize:         f.CodeSize,
		Description:      f.Description,
		Timeout:          f.Timeout,
		MemorySize:       f.MemorySize,
		LastModified:     f.LastModified.Format(lambdaapi.TimeFormat),
		CodeSha256:       base64.StdEncoding.EncodeToString(sum),
		Version:          f.VersionName(),
		TracingConfig:    lambdaapi.TracingConfig{Mode: "PassThrough"},
		RevisionId:       f.RevisionID,
		State:            lambdaapi.StateActive,
		LastUpdateStatus: lambdaapi.LastUpdateSuccessful,
		PackageType:      lambdaapi.PackageTypeZip,
		Architectures:    f.Architectures,
		EphemeralStorage: lambdaapi.EphemeralStorage{Size: f.EphemeralStorage},
		LoggingConfig:    lambdaapi.LoggingConfig{LogFormat: "Text", LogGroup: "/aws/lambda/" + f.Name},
	}
	if len(f.Environment) > 0 {
		c.Environment = &lambdaapi.EnvironmentResponse{Variables: f.Environment}
	}
	for _, l := range f.Layers {
		c.Layers = append(c.Layers, lambdaapi.Layer{Arn: l.ARN, CodeSize: l.CodeSize})
	}
	if f.DeadLetterTarget != "" {
		target := f.DeadLetterTarget
		c.DeadLetterConfig = &lambdaapi.DeadLetterConfig{TargetArn: &target}
	}
	if f.Version != "" {
		c.LastUpdateStatus = "" // a published version is never updated
	}
	return c
}

// runtimeList is Lambda's enum of runtimes: those served here and those
// known.
func (s *Server) runtimeList(known []string) string {
	names := slices.AppendSeq(slices.Clone(known), maps.Keys(s.cfg.Runtimes))
	slices.Sort(names)
	return "[" + strings.Join(slices.Compact(names), ", ") + "]"
}

func cloneMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	return maps.Clone(m)
}
