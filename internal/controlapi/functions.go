package controlapi

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/emberfn/ember/internal/codepkg"
	"github.com/emberfn/ember/internal/lambdaapi"
	"github.com/emberfn/ember/internal/store"
)

// resolve finds the caller's function named by the {fn} path value and
// the Qualifier query parameter. Another account's ARN is answered as not
// found: accounts never see each other's functions.
func (s *Server) resolve(r *request) (store.Revision, error) {
	ref, err := lambdaapi.ParseFunctionRef(r.PathValue("fn"))
	if err != nil {
		return store.Revision{}, err
	}
	q := r.URL.Query().Get("Qualifier")
	if ref.Qualifier != "" && q != "" && q != ref.Qualifier {
		return store.Revision{}, lambdaapi.Errorf(lambdaapi.InvalidParameterValue,
			"The derived qualifier from the function name does not match the specified qualifier.")
	}
	if q != "" {
		ref.Qualifier = q
	}
	notFound := func() (store.Revision, error) {
		arn := lambdaapi.FunctionARN(s.cfg.Region, r.principal.AccountID, ref.Name)
		if ref.Qualifier != "" {
			arn += ":" + ref.Qualifier
		}
		return store.Revision{}, lambdaapi.Errorf(lambdaapi.ResourceNotFound, "Function not found: %s", arn)
	}
	if (ref.Account != "" && ref.Account != r.principal.AccountID) ||
		(ref.Region != "" && ref.Region != s.cfg.Region) {
		return notFound()
	}
	if ref.Qualifier != "" && ref.Qualifier != lambdaapi.VersionLatest {
		return notFound() // versions and aliases are not built yet
	}
	f, err := s.cfg.Store.GetFunction(r.Context(), r.principal.AccountID, ref.Name)
	if errors.Is(err, store.ErrNotFound) {
		return notFound()
	}
	return f, err
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
	if in.Publish {
		return lambdaapi.Errorf(lambdaapi.InvalidParameterValue, "Publish is not supported yet: Ember has no versions so far; omit it")
	}
	if len(in.Layers) > 0 {
		return lambdaapi.Errorf(lambdaapi.InvalidParameterValue, "Layers are not supported yet")
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

	unlock := s.lockCode(f.AccountID)
	defer unlock()
	if _, err := s.cfg.Store.GetFunction(r.Context(), f.AccountID, f.Name); err == nil {
		return s.conflict(f.Name)
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
	return writeJSON(w, http.StatusCreated, s.configuration(&f))
}

func (s *Server) conflict(name string) error {
	return lambdaapi.Errorf(lambdaapi.ResourceConflict, "Function already exist: %s", name)
}

func (s *Server) getFunction(w http.ResponseWriter, r *request) error {
	f, err := s.resolve(r)
	if err != nil {
		return err
	}
	out := lambdaapi.GetFunctionOutput{
		Configuration: s.configuration(&f.Function),
		Code: lambdaapi.FunctionCodeLocation{
			RepositoryType: "S3",
			Location:       s.codeURL(r.Request, f.AccountID, f.CodeSHA256),
		},
	}
	if f.ReservedConcurrency != nil {
		out.Concurrency = &lambdaapi.Concurrency{ReservedConcurrentExecutions: f.ReservedConcurrency}
	}
	return writeJSON(w, http.StatusOK, out)
}

func (s *Server) getFunctionConfiguration(w http.ResponseWriter, r *request) error {
	f, err := s.resolve(r)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, s.configuration(&f.Function))
}

func (s *Server) listFunctions(w http.ResponseWriter, r *request) error {
	q := r.URL.Query()
	max := 50
	if v := q.Get("MaxItems"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 10000 {
			return lambdaapi.Errorf(lambdaapi.InvalidParameterValue,
				"1 validation error detected: Value '%s' at 'maxItems' failed to satisfy constraint: Member must have value between 1 and 10000", v)
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
		out.Functions = append(out.Functions, s.configuration(&fs[i]))
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
	if in.Publish {
		return lambdaapi.Errorf(lambdaapi.InvalidParameterValue, "Publish is not supported yet: Ember has no versions so far; omit it")
	}
	if err := s.checkArchitectures(in.Architectures); err != nil {
		return err
	}
	unlock := s.lockCode(r.principal.AccountID)
	defer unlock()
	var stored string
	f, old, err := s.modify(r, in.RevisionId, func(f *store.Function) error {
		pkg, err := s.checkPackage(in.ZipFile, f.Runtime)
		if err != nil {
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
	}, !in.DryRun)
	if err != nil {
		if stored != "" {
			s.dropCodeIfUnused(r.Context(), r.principal.AccountID, stored)
		}
		return err
	}
	if old.CodeSHA256 != f.CodeSHA256 {
		s.dropCodeIfUnused(r.Context(), f.AccountID, old.CodeSHA256)
	}
	return writeJSON(w, http.StatusOK, s.configuration(&f))
}

func (s *Server) updateFunctionConfiguration(w http.ResponseWriter, r *request) error {
	var in lambdaapi.UpdateFunctionConfigurationInput
	if err := decode(r, &in); err != nil {
		return err
	}
	if len(in.Layers) > 0 {
		return lambdaapi.Errorf(lambdaapi.InvalidParameterValue, "Layers are not supported yet")
	}
	f, _, err := s.modify(r, in.RevisionId, func(f *store.Function) error {
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
		return s.applyConfig(f, &in)
	}, true)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, s.configuration(&f))
}

// modify reads the function, checks the RevisionId precondition, applies
// change and writes the result if write is set, retrying a concurrent
// change. It returns the new and the old function.
func (s *Server) modify(r *request, revisionID string, change func(*store.Function) error, write bool) (store.Function, store.Function, error) {
	return s.modifyRev(r, revisionID, change, write, true)
}

// modifyRev is modify; newRevision false keeps RevisionId and LastModified
// (a change that is neither code nor configuration).
func (s *Server) modifyRev(r *request, revisionID string, change func(*store.Function) error, write, newRevision bool) (store.Function, store.Function, error) {
	for attempt := 0; ; attempt++ {
		cur, err := s.resolve(r)
		if err != nil {
			return store.Function{}, store.Function{}, err
		}
		if revisionID != "" && revisionID != cur.RevisionID {
			return store.Function{}, store.Function{}, lambdaapi.Errorf(lambdaapi.PreconditionFailed,
				"The Revision Id provided does not match the latest Revision Id. Call the GetFunction/GetAlias API to retrieve the latest Revision Id")
		}
		old := cur.Function
		f := cur.Function
		f.Environment = cloneMap(old.Environment)
		if err := change(&f); err != nil {
			return store.Function{}, store.Function{}, err
		}
		if !write {
			return f, old, nil
		}
		if newRevision {
			f.RevisionID = lambdaapi.NewRequestID()
			f.LastModified = s.cfg.Now().UTC()
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

func (s *Server) deleteFunction(w http.ResponseWriter, r *request) error {
	if q := r.URL.Query().Get("Qualifier"); q == lambdaapi.VersionLatest {
		return lambdaapi.Errorf(lambdaapi.InvalidParameterValue, "$LATEST version cannot be deleted without deleting the function.")
	}
	unlock := s.lockCode(r.principal.AccountID)
	defer unlock()
	f, err := s.resolve(r)
	if err != nil {
		return err
	}
	if err := s.cfg.Store.DeleteFunction(r.Context(), f.AccountID, f.Name, f.Rev); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return lambdaapi.Errorf(lambdaapi.ResourceConflict, "The function changed while it was being deleted; retry")
		}
		return err
	}
	s.dropCodeIfUnused(r.Context(), f.AccountID, f.CodeSHA256)
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
			return lambdaapi.Errorf(lambdaapi.InvalidParameterValue,
				"1 validation error detected: Value at 'description' failed to satisfy constraint: Member must have length less than or equal to 256")
		}
		f.Description = *in.Description
	}
	if in.Timeout != nil {
		if *in.Timeout < lambdaapi.MinTimeout || *in.Timeout > lambdaapi.MaxTimeout {
			return lambdaapi.Errorf(lambdaapi.InvalidParameterValue,
				"1 validation error detected: Value '%d' at 'timeout' failed to satisfy constraint: Member must have value between 1 and 900", *in.Timeout)
		}
		f.Timeout = *in.Timeout
	}
	if in.MemorySize != nil {
		if *in.MemorySize < lambdaapi.MinMemory || *in.MemorySize > lambdaapi.MaxMemory {
			return lambdaapi.Errorf(lambdaapi.InvalidParameterValue,
				"1 validation error detected: Value '%d' at 'memorySize' failed to satisfy constraint: Member must have value between 128 and 10240", *in.MemorySize)
		}
		f.MemorySize = *in.MemorySize
	}
	if in.EphemeralStorage != nil {
		if in.EphemeralStorage.Size < lambdaapi.MinEphemeral || in.EphemeralStorage.Size > lambdaapi.MaxEphemeral {
			return lambdaapi.Errorf(lambdaapi.InvalidParameterValue,
				"1 validation error detected: Value '%d' at 'ephemeralStorage.size' failed to satisfy constraint: Member must have value between 512 and 10240", in.EphemeralStorage.Size)
		}
		f.EphemeralStorage = in.EphemeralStorage.Size
	}
	if in.Environment != nil {
		if err := lambdaapi.ValidateEnvironment(in.Environment.Variables); err != nil {
			return err
		}
		f.Environment = cloneMap(in.Environment.Variables)
	}
	if len(f.Handler) > 128 {
		return lambdaapi.Errorf(lambdaapi.InvalidParameterValue,
			"1 validation error detected: Value at 'handler' failed to satisfy constraint: Member must have length less than or equal to 128")
	}
	if f.Role != "" && !lambdaapi.RoleARNValid(f.Role) {
		return lambdaapi.Errorf(lambdaapi.InvalidParameterValue,
			"1 validation error detected: Value '%s' at 'role' failed to satisfy constraint: Member must satisfy regular expression pattern: arn:(aws[a-zA-Z-]*)?:iam::\\d{12}:role/?[a-zA-Z_0-9+=,.@\\-_/]+", f.Role)
	}
	return nil
}

func (s *Server) checkRuntime(rt string) error {
	if _, ok := s.cfg.Runtimes[rt]; !ok {
		return lambdaapi.Errorf(lambdaapi.InvalidParameterValue,
			"Value %s at 'runtime' failed to satisfy constraint: Member must satisfy enum value set: %s", rt, s.runtimeList())
	}
	return nil
}

func (s *Server) checkArchitectures(archs []string) error {
	if len(archs) == 0 {
		return nil
	}
	if len(archs) != 1 || archs[0] != s.arch {
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

// configuration is Lambda's description of a stored function.
func (s *Server) configuration(f *store.Function) lambdaapi.FunctionConfiguration {
	sum, _ := hex.DecodeString(f.CodeSHA256)
	c := lambdaapi.FunctionConfiguration{
		FunctionName:     f.Name,
		FunctionArn:      lambdaapi.FunctionARN(s.cfg.Region, f.AccountID, f.Name),
		Runtime:          f.Runtime,
		Role:             f.Role,
		Handler:          f.Handler,
		CodeSize:         f.CodeSize,
		Description:      f.Description,
		Timeout:          f.Timeout,
		MemorySize:       f.MemorySize,
		LastModified:     f.LastModified.Format(lambdaapi.TimeFormat),
		CodeSha256:       base64.StdEncoding.EncodeToString(sum),
		Version:          lambdaapi.VersionLatest,
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
	return c
}

func (s *Server) runtimeList() string {
	return "[" + strings.Join(slices.Sorted(maps.Keys(s.cfg.Runtimes)), ", ") + "]"
}

func cloneMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	return maps.Clone(m)
}
