package controlapi

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net/http"
	"slices"
	"strconv"

	"github.com/emberfn/ember/internal/codepkg"
	"github.com/emberfn/ember/internal/lambdaapi"
	"github.com/emberfn/ember/internal/store"
)

// Layers: PublishLayerVersion stores the zip in the code store (by
// account and digest, shared with any package of the same bytes) and an
// immutable version record under the next number of the layer name.
// Functions name layer versions by ARN; they keep a copy of what they need
// (digest and sizes), so DeleteLayerVersion removes the version from view
// while the functions that use it keep working: its package stays until
// nothing refers to it (CodeInUse). Layers are private to their account:
// another account's layer is answered as one that does not exist. Writes
// and deletes hold the account's code lock, like function code.

// layerTarget resolves the LayerName path value. ok is false when it names
// another account's or region's layer, which the caller must treat as
// one that does not exist.
func (s *Server) layerTarget(r *request) (name string, ok bool, err error) {
	ref, err := lambdaapi.ParseLayerName(r.PathValue("layer"))
	if err != nil {
		return "", false, err
	}
	if (ref.Account != "" && ref.Account != r.principal.AccountID) || (ref.Region != "" && ref.Region != s.cfg.Region) {
		return ref.Name, false, nil
	}
	return ref.Name, true, nil
}

// layerVersionNumber parses the VersionNumber path value.
func layerVersionNumber(r *request) (int, error) {
	v := r.PathValue("version")
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return 0, lambdaapi.Validationf(
			"Value '%s' at 'versionNumber' failed to satisfy constraint: Member must be a number", truncate(v, 32))
	}
	if n < 1 {
		return 0, lambdaapi.Errorf(lambdaapi.InvalidParameterValue, "Layer Version Cannot be less than 1")
	}
	if n > 1<<31 {
		return 0, errLayerNotFound()
	}
	return int(n), nil
}

func errLayerNotFound() error {
	return lambdaapi.Errorf(lambdaapi.ResourceNotFound, "The resource you requested does not exist.")
}

func (s *Server) publishLayerVersion(w http.ResponseWriter, r *request) error {
	var in lambdaapi.PublishLayerVersionInput
	if err := decode(r, &in); err != nil {
		return err
	}
	name, own, err := s.layerTarget(r)
	if err != nil {
		return err
	}
	if !own {
		return lambdaapi.Errorf(lambdaapi.InvalidParameterValue, "LayerName must name a layer of your account in %s", s.cfg.Region)
	}
	if in.Content == nil || (len(in.Content.ZipFile) == 0 && in.Content.S3Bucket == nil) {
		return lambdaapi.Errorf(lambdaapi.InvalidParameterValue, "Content.ZipFile is required")
	}
	if in.Content.S3Bucket != nil || in.Content.S3Key != nil || in.Content.S3ObjectVersion != nil {
		return lambdaapi.Errorf(lambdaapi.InvalidParameterValue, "Ember takes layer content as Content.ZipFile only (no S3 locations)")
	}
	if err := lambdaapi.CheckLayerCompatibility(in.CompatibleRuntimes, in.CompatibleArchitectures); err != nil {
		return err
	}
	l := store.LayerVersion{
		AccountID:               r.principal.AccountID,
		Name:                    name,
		CompatibleRuntimes:      slices.Clone(in.CompatibleRuntimes),
		CompatibleArchitectures: slices.Clone(in.CompatibleArchitectures),
	}
	if in.Description != nil {
		if len(*in.Description) > lambdaapi.MaxDescription {
			return lambdaapi.Validationf(
				"Value at 'description' failed to satisfy constraint: Member must have length less than or equal to 256")
		}
		l.Description = *in.Description
	}
	if in.LicenseInfo != nil {
		if len(*in.LicenseInfo) > lambdaapi.MaxLicenseInfo {
			return lambdaapi.Validationf(
				"Value at 'licenseInfo' failed to satisfy constraint: Member must have length less than or equal to 512")
		}
		l.LicenseInfo = *in.LicenseInfo
	}
	// A layer is any valid package: no bootstrap is needed.
	pkg, err := codepkg.Validate(in.Content.ZipFile, codepkg.DefaultLimits(), false)
	if errors.Is(err, codepkg.ErrTooLarge) {
		return lambdaapi.Errorf(lambdaapi.RequestTooLarge, "%s", err.Error())
	}
	if err != nil {
		return lambdaapi.Errorf(lambdaapi.InvalidParameterValue, "%s", err.Error())
	}
	l.CodeSHA256 = hex.EncodeToString(pkg.SHA256[:])
	l.CodeSize = pkg.Size
	l.UnzippedSize = pkg.UnzippedSize

	ctx := r.Context()
	unlock := s.lockCode(l.AccountID)
	defer unlock()
	if l.Version, err = s.cfg.Store.NextLayerVersion(ctx, l.AccountID, l.Name); err != nil {
		return err
	}
	l.CreatedDate = s.cfg.Now().UTC()
	if err := s.cfg.Store.PutCode(ctx, l.AccountID, l.CodeSHA256, in.Content.ZipFile); err != nil {
		return err
	}
	if err := s.cfg.Store.CreateLayerVersion(ctx, l); err != nil {
		s.dropCodeIfUnused(ctx, l.AccountID, l.CodeSHA256)
		return err
	}
	s.log.Info("layer version published", "account", l.AccountID, "layer", l.Name, "version", l.Version, "code_sha256", l.CodeSHA256)
	return writeJSON(w, http.StatusCreated, s.layerVersionOutput(r, &l))
}

func (s *Server) getLayerVersion(w http.ResponseWriter, r *request) error {
	name, own, err := s.layerTarget(r)
	if err != nil {
		return err
	}
	version, err := layerVersionNumber(r)
	if err != nil {
		return err
	}
	if !own {
		return errLayerNotFound()
	}
	return s.writeLayerVersion(w, r, name, version)
}

func (s *Server) writeLayerVersion(w http.ResponseWriter, r *request, name string, version int) error {
	l, err := s.cfg.Store.GetLayerVersion(r.Context(), r.principal.AccountID, name, version)
	if errors.Is(err, store.ErrNotFound) {
		return errLayerNotFound()
	}
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, s.layerVersionOutput(r, &l))
}

// getLayerVersionByArn is GetLayerVersionByArn, which shares its path with
// ListLayers.
func (s *Server) getLayerVersionByArn(w http.ResponseWriter, r *request) error {
	arn := r.URL.Query().Get("Arn")
	ref, ok := lambdaapi.ParseLayerVersionARN(arn)
	if !ok {
		return lambdaapi.Validationf(
			"Value '%s' at 'arn' failed to satisfy constraint: Member must satisfy regular expression pattern: arn:(aws[a-zA-Z-]*)?:lambda:[a-z]{2}((-gov)|(-iso(b?)))?-[a-z]+-\\d{1}:\\d{12}:layer:[a-zA-Z0-9-_]+:[0-9]+",
			truncate(arn, 140))
	}
	if ref.Account != r.principal.AccountID || ref.Region != s.cfg.Region {
		return errLayerNotFound()
	}
	return s.writeLayerVersion(w, r, ref.Name, ref.Version)
}

// deleteLayerVersion deletes a version; one that does not exist is not an
// error (as Lambda). Functions using it keep its content.
func (s *Server) deleteLayerVersion(w http.ResponseWriter, r *request) error {
	name, own, err := s.layerTarget(r)
	if err != nil {
		return err
	}
	version, err := layerVersionNumber(r)
	if err != nil && lambdaapi.AsError(err).Type != lambdaapi.ResourceNotFound {
		return err
	}
	if err != nil || !own {
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	ctx, account := r.Context(), r.principal.AccountID
	unlock := s.lockCode(account)
	defer unlock()
	l, err := s.cfg.Store.GetLayerVersion(ctx, account, name, version)
	if errors.Is(err, store.ErrNotFound) {
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	if err != nil {
		return err
	}
	if err := s.cfg.Store.DeleteLayerVersion(ctx, account, name, version); err != nil {
		return err
	}
	s.dropCodeIfUnused(ctx, account, l.CodeSHA256)
	s.log.Info("layer version deleted", "account", account, "layer", name, "version", version)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// layerFilters reads the CompatibleRuntime and CompatibleArchitecture
// filters of the list operations.
func layerFilters(r *request) (runtime, arch string, err error) {
	q := r.URL.Query()
	runtime, arch = q.Get("CompatibleRuntime"), q.Get("CompatibleArchitecture")
	var rs, as []string
	if runtime != "" {
		rs = []string{runtime}
	}
	if arch != "" {
		as = []string{arch}
	}
	return runtime, arch, lambdaapi.CheckLayerCompatibility(rs, as)
}

func layerMatches(l *store.LayerVersion, runtime, arch string) bool {
	return (runtime == "" || slices.Contains(l.CompatibleRuntimes, runtime)) &&
		(arch == "" || slices.Contains(l.CompatibleArchitectures, arch))
}

// layerListParams reads MaxItems (1 to 50, default 50) and Marker of the
// layer list operations.
func layerListParams(r *request) (int, string, error) {
	return listParams(r, lambdaapi.MaxLayerListItems)
}

// listLayers is ListLayers: each layer of the caller's account, by name,
// with its latest version that matches the filters. GetLayerVersionByArn
// shares its path (find=LayerVersion).
func (s *Server) listLayers(w http.ResponseWriter, r *request) error {
	switch f := r.URL.Query().Get("find"); f {
	case "":
	case "LayerVersion":
		return s.getLayerVersionByArn(w, r)
	default:
		return lambdaapi.Validationf(
			"Value '%s' at 'find' failed to satisfy constraint: Member must satisfy enum value set: [LayerVersion]", truncate(f, 32))
	}
	runtime, arch, err := layerFilters(r)
	if err != nil {
		return err
	}
	max, after, err := layerListParams(r)
	if err != nil {
		return err
	}
	all, err := s.cfg.Store.ListLayerVersions(r.Context(), r.principal.AccountID, "")
	if err != nil {
		return err
	}
	out := lambdaapi.ListLayersOutput{Layers: []lambdaapi.LayersListItem{}}
	// all is by name, then version: the last match of each name wins.
	var latest *store.LayerVersion
	flush := func() bool {
		if latest == nil {
			return true
		}
		if len(out.Layers) == max {
			out.NextMarker = marker(out.Layers[len(out.Layers)-1].LayerName)
			return false
		}
		item := s.layerListItem(latest)
		out.Layers = append(out.Layers, lambdaapi.LayersListItem{
			LayerName:             latest.Name,
			LayerArn:              lambdaapi.LayerARN(s.cfg.Region, latest.AccountID, latest.Name),
			LatestMatchingVersion: &item,
		})
		latest = nil
		return true
	}
	for i := range all {
		l := &all[i]
		if after != "" && l.Name <= after {
			continue
		}
		if latest != nil && latest.Name != l.Name && !flush() {
			break
		}
		if layerMatches(l, runtime, arch) {
			latest = l
		}
	}
	if out.NextMarker == nil {
		flush()
	}
	return writeJSON(w, http.StatusOK, out)
}

// listLayerVersions is ListLayerVersions: the versions of one layer that
// match the filters, newest first. A layer without versions (or another
// account's) lists none.
func (s *Server) listLayerVersions(w http.ResponseWriter, r *request) error {
	name, own, err := s.layerTarget(r)
	if err != nil {
		return err
	}
	runtime, arch, err := layerFilters(r)
	if err != nil {
		return err
	}
	max, after, err := layerListParams(r)
	if err != nil {
		return err
	}
	before := 0 // list versions below this number (0: all)
	if after != "" {
		if before, err = strconv.Atoi(after); err != nil {
			return lambdaapi.Errorf(lambdaapi.InvalidParameterValue, "Invalid Marker")
		}
	}
	out := lambdaapi.ListLayerVersionsOutput{LayerVersions: []lambdaapi.LayerVersionsListItem{}}
	if !own {
		return writeJSON(w, http.StatusOK, out)
	}
	vs, err := s.cfg.Store.ListLayerVersions(r.Context(), r.principal.AccountID, name)
	if err != nil {
		return err
	}
	for i := len(vs) - 1; i >= 0; i-- {
		l := &vs[i]
		if (before != 0 && l.Version >= before) || !layerMatches(l, runtime, arch) {
			continue
		}
		if len(out.LayerVersions) == max {
			out.NextMarker = marker(strconv.FormatInt(out.LayerVersions[len(out.LayerVersions)-1].Version, 10))
			break
		}
		out.LayerVersions = append(out.LayerVersions, s.layerListItem(l))
	}
	return writeJSON(w, http.StatusOK, out)
}

// layerPermissions answers the layer permission operations: Ember has no
// resource policies, and layers are private to their account.
func (s *Server) layerPermissions(http.ResponseWriter, *request) error {
	return lambdaapi.Errorf(lambdaapi.InvalidParameterValue,
		"Layer version permissions are not supported by Ember: a layer is usable by its own account only")
}

func (s *Server) layerVersionOutput(r *request, l *store.LayerVersion) lambdaapi.LayerVersionOutput {
	sum, _ := hex.DecodeString(l.CodeSHA256)
	return lambdaapi.LayerVersionOutput{
		Content: &lambdaapi.LayerVersionContentOutput{
			Location:   s.codeURL(r.Request, l.AccountID, l.CodeSHA256),
			CodeSha256: base64.StdEncoding.EncodeToString(sum),
			CodeSize:   l.CodeSize,
		},
		LayerArn:                lambdaapi.LayerARN(s.cfg.Region, l.AccountID, l.Name),
		LayerVersionArn:         lambdaapi.LayerVersionARN(s.cfg.Region, l.AccountID, l.Name, l.Version),
		Description:             l.Description,
		CreatedDate:             l.CreatedDate.Format(lambdaapi.TimeFormat),
		Version:                 int64(l.Version),
		CompatibleRuntimes:      l.CompatibleRuntimes,
		LicenseInfo:             l.LicenseInfo,
		CompatibleArchitectures: l.CompatibleArchitectures,
	}
}

func (s *Server) layerListItem(l *store.LayerVersion) lambdaapi.LayerVersionsListItem {
	return lambdaapi.LayerVersionsListItem{
		LayerVersionArn:         lambdaapi.LayerVersionARN(s.cfg.Region, l.AccountID, l.Name, l.Version),
		Version:                 int64(l.Version),
		Description:             l.Description,
		CreatedDate:             l.CreatedDate.Format(lambdaapi.TimeFormat),
		CompatibleRuntimes:      l.CompatibleRuntimes,
		LicenseInfo:             l.LicenseInfo,
		CompatibleArchitectures: l.CompatibleArchitectures,
	}
}

// functionLayers resolves the Layers of CreateFunction or
// UpdateFunctionConfiguration: each must be a layer version of the
// caller's account in this region that exists now. The caller holds the
// account's code lock, so none is deleted before the function is stored.
func (s *Server) functionLayers(ctx context.Context, account string, arns []string) ([]store.FunctionLayer, error) {
	refs, err := lambdaapi.CheckFunctionLayers(arns)
	if err != nil {
		return nil, err
	}
	out := make([]store.FunctionLayer, 0, len(refs))
	for i, ref := range refs {
		missing := lambdaapi.Errorf(lambdaapi.InvalidParameterValue, "Layer version %s does not exist.", arns[i])
		if ref.Account != account {
			return nil, missing // accounts never see each other's layers
		}
		if ref.Region != s.cfg.Region {
			return nil, lambdaapi.Errorf(lambdaapi.InvalidParameterValue,
				"Layers are not in the same region as the function. Layers are expected to be in region %s.", s.cfg.Region)
		}
		l, err := s.cfg.Store.GetLayerVersion(ctx, account, ref.Name, ref.Version)
		if errors.Is(err, store.ErrNotFound) {
			return nil, missing
		}
		if err != nil {
			return nil, err
		}
		out = append(out, store.FunctionLayer{
			ARN:          lambdaapi.LayerVersionARN(s.cfg.Region, account, l.Name, l.Version),
			CodeSHA256:   l.CodeSHA256,
			CodeSize:     l.CodeSize,
			UnzippedSize: l.UnzippedSize,
		})
	}
	return out, nil
}

// checkTotalSize refuses a function whose code and layers unzip to more
// than Lambda's 250 MB.
func checkTotalSize(codeUnzipped int64, layers []store.FunctionLayer) error {
	total := codeUnzipped
	for _, l := range layers {
		total += l.UnzippedSize
	}
	if total > lambdaapi.MaxUnzippedWithLayers {
		return lambdaapi.Errorf(lambdaapi.InvalidParameterValue,
			"Function code combined with layers exceeds the maximum allowed size of %d bytes. The actual size is %d bytes.",
			lambdaapi.MaxUnzippedWithLayers, total)
	}
	return nil
}

// dropLayersIfUnused deletes the contents of layers that nothing uses any
// more (a version deleted while functions still used it).
func (s *Server) dropLayersIfUnused(ctx context.Context, account string, layers []store.FunctionLayer, keep []store.FunctionLayer) {
	for _, l := range layers {
		if !slices.ContainsFunc(keep, func(k store.FunctionLayer) bool { return k.CodeSHA256 == l.CodeSHA256 }) {
			s.dropCodeIfUnused(ctx, account, l.CodeSHA256)
		}
	}
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
