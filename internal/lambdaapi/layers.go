package lambdaapi

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Layers: names, ARNs, limits and wire shapes (API version 2018-10-31).

// Limits of layers, as Lambda's.
const (
	// MaxFunctionLayers is the number of layers a function may use.
	MaxFunctionLayers = 5
	// MaxUnzippedWithLayers bounds the unzipped size of a function's code
	// and all its layers together (250 MB).
	MaxUnzippedWithLayers = 262144000
	MaxLicenseInfo        = 512
	MaxLayerListItems     = 50
	maxLayerRuntimes      = 15
	maxLayerArchitectures = 2
	maxLayerNameOrARN     = 140
)

var (
	layerNameRE = regexp.MustCompile(`^[a-zA-Z0-9_-]+$`)
	// layerARNRE is a layer's ARN, without a version.
	layerARNRE = regexp.MustCompile(`^arn:[a-zA-Z0-9-]+:lambda:([a-zA-Z0-9-]+):([0-9]{12}):layer:([a-zA-Z0-9_-]+)$`)
	// layerVersionARNRE is a layer version's ARN.
	layerVersionARNRE = regexp.MustCompile(`^arn:[a-zA-Z0-9-]+:lambda:([a-zA-Z0-9-]+):([0-9]{12}):layer:([a-zA-Z0-9_-]+):([0-9]+)$`)
	runtimeNameRE     = regexp.MustCompile(`^[a-z][a-z0-9.]{0,31}$`)
)

// LayerRef is a layer named by a caller: a name or a layer ARN. Region and
// Account are empty when the caller gave a name.
type LayerRef struct {
	Region  string
	Account string
	Name    string
}

// ParseLayerName parses the LayerName of a request: a name or a layer ARN
// without a version.
func ParseLayerName(s string) (LayerRef, error) {
	if len(s) >= 1 && len(s) <= maxLayerNameOrARN {
		if layerNameRE.MatchString(s) {
			return LayerRef{Name: s}, nil
		}
		if m := layerARNRE.FindStringSubmatch(s); m != nil {
			return LayerRef{Region: m[1], Account: m[2], Name: m[3]}, nil
		}
	}
	return LayerRef{}, Validationf(
		"Value '%s' at 'layerName' failed to satisfy constraint: Member must satisfy regular expression pattern: (arn:[a-zA-Z0-9-]+:lambda:[a-zA-Z0-9-]+:\\d{12}:layer:[a-zA-Z0-9-_]+)|[a-zA-Z0-9-_]+", truncate(s, maxLayerNameOrARN))
}

// LayerVersionRef is a layer version named by its ARN.
type LayerVersionRef struct {
	LayerRef
	Version int
}

// ParseLayerVersionARN parses a layer version ARN, as given in a
// function's Layers or to GetLayerVersionByArn. ok is false if s is no
// such ARN (or its version is not a number from 1).
func ParseLayerVersionARN(s string) (ref LayerVersionRef, ok bool) {
	if len(s) > maxLayerNameOrARN {
		return ref, false
	}
	m := layerVersionARNRE.FindStringSubmatch(s)
	if m == nil {
		return ref, false
	}
	v, err := strconv.Atoi(m[4])
	if err != nil || v < 1 {
		return ref, false
	}
	return LayerVersionRef{LayerRef: LayerRef{Region: m[1], Account: m[2], Name: m[3]}, Version: v}, true
}

// CheckFunctionLayers validates the Layers of CreateFunction and
// UpdateFunctionConfiguration as Lambda does before looking them up:
// their number, each ARN's shape, and two versions of one layer.
func CheckFunctionLayers(arns []string) ([]LayerVersionRef, error) {
	if len(arns) > MaxFunctionLayers {
		return nil, Errorf(InvalidParameterValue, "Cannot reference more than %d layers.", MaxFunctionLayers)
	}
	refs := make([]LayerVersionRef, 0, len(arns))
	seen := map[LayerRef]string{}
	for _, a := range arns {
		ref, ok := ParseLayerVersionARN(a)
		if !ok {
			return nil, Validationf(
				"Value '[%s]' at 'layers' failed to satisfy constraint: Member must satisfy constraint: [Member must have length less than or equal to 140, Member must have length greater than or equal to 1, Member must satisfy regular expression pattern: arn:[a-zA-Z0-9-]+:lambda:[a-zA-Z0-9-]+:\\d{12}:layer:[a-zA-Z0-9-_]+:[0-9]+, Member must not be null]",
				truncate(a, 200))
		}
		if prev, dup := seen[ref.LayerRef]; dup {
			return nil, Errorf(InvalidParameterValue,
				"Two different versions of the same layer are not allowed to be referenced in the same function. %s and %s are versions of the same layer.", prev, a)
		}
		seen[ref.LayerRef] = a
		refs = append(refs, ref)
	}
	return refs, nil
}

// LayerARN is the ARN of a layer.
func LayerARN(region, account, name string) string {
	return fmt.Sprintf("arn:%s:lambda:%s:%s:layer:%s", Partition, region, account, name)
}

// LayerVersionARN is the ARN of a layer version.
func LayerVersionARN(region, account, name string, version int) string {
	return LayerARN(region, account, name) + ":" + strconv.Itoa(version)
}

// CheckLayerCompatibility validates the CompatibleRuntimes and
// CompatibleArchitectures of PublishLayerVersion (and the filters of the
// list operations, one value each).
func CheckLayerCompatibility(runtimes, archs []string) error {
	if len(runtimes) > maxLayerRuntimes {
		return Validationf(
			"Value at 'compatibleRuntimes' failed to satisfy constraint: Member must have length less than or equal to %d", maxLayerRuntimes)
	}
	for _, r := range runtimes {
		if !runtimeNameRE.MatchString(r) {
			return Validationf(
				"Value '%s' at 'compatibleRuntimes' failed to satisfy constraint: Member must be a runtime identifier", truncate(r, 64))
		}
	}
	if len(archs) > maxLayerArchitectures {
		return Validationf(
			"Value at 'compatibleArchitectures' failed to satisfy constraint: Member must have length less than or equal to %d", maxLayerArchitectures)
	}
	for _, a := range archs {
		if a != "x86_64" && a != "arm64" {
			return Validationf(
				"Value '[%s]' at 'compatibleArchitectures' failed to satisfy constraint: Member must satisfy constraint: [Member must satisfy enum value set: [x86_64, arm64]]",
				strings.Join(archs, ", "))
		}
	}
	return nil
}

// LayerVersionContentInput is the Content of PublishLayerVersion.
type LayerVersionContentInput struct {
	ZipFile             []byte  `json:"ZipFile"`
	S3Bucket            *string `json:"S3Bucket"`
	S3Key               *string `json:"S3Key"`
	S3ObjectVersion     *string `json:"S3ObjectVersion"`
	S3ObjectStorageMode *string `json:"S3ObjectStorageMode"`
}

// PublishLayerVersionInput is the body of PublishLayerVersion.
type PublishLayerVersionInput struct {
	Content                 *LayerVersionContentInput `json:"Content"`
	CompatibleRuntimes      []string                  `json:"CompatibleRuntimes"`
	CompatibleArchitectures []string                  `json:"CompatibleArchitectures"`
	Description             *string                   `json:"Description"`
	LicenseInfo             *string                   `json:"LicenseInfo"`
}

// LayerVersionContentOutput is the Content of a layer version: a
// time-limited download URL and the package's digest and size.
type LayerVersionContentOutput struct {
	Location   string `json:"Location"`
	CodeSha256 string `json:"CodeSha256"`
	CodeSize   int64  `json:"CodeSize"`
}

// LayerVersionOutput is the body of PublishLayerVersion, GetLayerVersion
// and GetLayerVersionByArn.
type LayerVersionOutput struct {
	Content                 *LayerVersionContentOutput `json:"Content"`
	LayerArn                string                     `json:"LayerArn"`
	LayerVersionArn         string                     `json:"LayerVersionArn"`
	Description             string                     `json:"Description"`
	CreatedDate             string                     `json:"CreatedDate"`
	Version                 int64                      `json:"Version"`
	CompatibleRuntimes      []string                   `json:"CompatibleRuntimes,omitempty"`
	LicenseInfo             string                     `json:"LicenseInfo,omitempty"`
	CompatibleArchitectures []string                   `json:"CompatibleArchitectures,omitempty"`
}

// LayerVersionsListItem describes a layer version in the list operations.
type LayerVersionsListItem struct {
	LayerVersionArn         string   `json:"LayerVersionArn"`
	Version                 int64    `json:"Version"`
	Description             string   `json:"Description"`
	CreatedDate             string   `json:"CreatedDate"`
	CompatibleRuntimes      []string `json:"CompatibleRuntimes,omitempty"`
	LicenseInfo             string   `json:"LicenseInfo,omitempty"`
	CompatibleArchitectures []string `json:"CompatibleArchitectures,omitempty"`
}

// LayersListItem is a layer in ListLayers, with its latest version that
// matches the filters.
type LayersListItem struct {
	LayerName             string                 `json:"LayerName"`
	LayerArn              string                 `json:"LayerArn"`
	LatestMatchingVersion *LayerVersionsListItem `json:"LatestMatchingVersion"`
}

// ListLayersOutput is the body of ListLayers.
type ListLayersOutput struct {
	Layers     []LayersListItem `json:"Layers"`
	NextMarker *string          `json:"NextMarker,omitempty"`
}

// ListLayerVersionsOutput is the body of ListLayerVersions.
type ListLayerVersionsOutput struct {
	LayerVersions []LayerVersionsListItem `json:"LayerVersions"`
	NextMarker    *string                 `json:"NextMarker,omitempty"`
}

// Layer is a layer of a function, in its FunctionConfiguration.
type Layer struct {
	Arn      string `json:"Arn"`
	CodeSize int64  `json:"CodeSize"`
}
