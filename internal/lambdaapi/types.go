package lambdaapi

// Wire shapes of the Lambda control API (REST-JSON, API version
// 2015-03-31). Field names are Lambda's; pointers mark optional inputs so
// that "absent" and "zero" differ.

// Defaults and limits of function configuration, as Lambda's.
const (
	DefaultTimeout          = 3
	MinTimeout, MaxTimeout  = 1, 900
	DefaultMemorySize       = 128
	MinMemory, MaxMemory    = 128, 10240
	DefaultEphemeralStorage = 512
	MinEphemeral            = 512
	MaxEphemeral            = 10240
	MaxDescription          = 256
	MaxEnvironmentBytes     = 4096
	// MaxCreateBody is the largest CreateFunction/UpdateFunctionCode body
	// Lambda accepts (a 50 MB zip, base64 encoded, plus JSON).
	MaxCreateBody = 70167211
	// MaxControlBody bounds every other control-plane request body.
	MaxControlBody = 1 << 20
)

// Environment is a function's environment variables.
type Environment struct {
	Variables map[string]string `json:"Variables,omitempty"`
}

// EnvironmentResponse is Environment as Lambda returns it.
type EnvironmentResponse struct {
	Variables map[string]string `json:"Variables"`
}

// EphemeralStorage is the size of /tmp in MB.
type EphemeralStorage struct {
	Size int `json:"Size"`
}

// DeadLetterConfig names the queue (or topic) where Lambda sends
// asynchronous events that failed for good; an empty TargetArn in an
// update removes it.
type DeadLetterConfig struct {
	TargetArn *string `json:"TargetArn,omitempty"`
}

// FunctionCode is the Code of CreateFunction.
type FunctionCode struct {
	ZipFile         []byte  `json:"ZipFile,omitempty"`
	S3Bucket        *string `json:"S3Bucket,omitempty"`
	S3Key           *string `json:"S3Key,omitempty"`
	S3ObjectVersion *string `json:"S3ObjectVersion,omitempty"`
	ImageUri        *string `json:"ImageUri,omitempty"`
}

// CreateFunctionInput is the body of CreateFunction.
type CreateFunctionInput struct {
	FunctionName     string            `json:"FunctionName"`
	Runtime          string            `json:"Runtime"`
	Role             string            `json:"Role"`
	Handler          string            `json:"Handler"`
	Code             *FunctionCode     `json:"Code"`
	Description      *string           `json:"Description"`
	Timeout          *int              `json:"Timeout"`
	MemorySize       *int              `json:"MemorySize"`
	Publish          bool              `json:"Publish"`
	PackageType      string            `json:"PackageType"`
	Environment      *Environment      `json:"Environment"`
	Architectures    []string          `json:"Architectures"`
	EphemeralStorage *EphemeralStorage `json:"EphemeralStorage"`
	Layers           []string          `json:"Layers"`
	DeadLetterConfig *DeadLetterConfig `json:"DeadLetterConfig"`
	Tags             map[string]string `json:"Tags"`
	VpcConfig        *struct {
		SubnetIds        []string `json:"SubnetIds"`
		SecurityGroupIds []string `json:"SecurityGroupIds"`
	} `json:"VpcConfig"`
}

// UpdateFunctionCodeInput is the body of UpdateFunctionCode.
type UpdateFunctionCodeInput struct {
	ZipFile       []byte   `json:"ZipFile"`
	S3Bucket      *string  `json:"S3Bucket"`
	S3Key         *string  `json:"S3Key"`
	ImageUri      *string  `json:"ImageUri"`
	Publish       bool     `json:"Publish"`
	DryRun        bool     `json:"DryRun"`
	RevisionId    string   `json:"RevisionId"`
	Architectures []string `json:"Architectures"`
}

// UpdateFunctionConfigurationInput is the body of UpdateFunctionConfiguration.
type UpdateFunctionConfigurationInput struct {
	Role             *string           `json:"Role"`
	Handler          *string           `json:"Handler"`
	Description      *string           `json:"Description"`
	Timeout          *int              `json:"Timeout"`
	MemorySize       *int              `json:"MemorySize"`
	Environment      *Environment      `json:"Environment"`
	Runtime          *string           `json:"Runtime"`
	EphemeralStorage *EphemeralStorage `json:"EphemeralStorage"`
	DeadLetterConfig *DeadLetterConfig `json:"DeadLetterConfig"`
	RevisionId       string            `json:"RevisionId"`
	// Layers nil: unchanged; empty (`[]`): no layers any more.
	Layers []string `json:"Layers"`
}

// TracingConfig is always PassThrough in Ember.
type TracingConfig struct {
	Mode string `json:"Mode"`
}

// LoggingConfig names the function's log group.
type LoggingConfig struct {
	LogFormat string `json:"LogFormat"`
	LogGroup  string `json:"LogGroup"`
}

// FunctionConfiguration is how Lambda describes a function.
type FunctionConfiguration struct {
	FunctionName     string               `json:"FunctionName"`
	FunctionArn      string               `json:"FunctionArn"`
	Runtime          string               `json:"Runtime"`
	Role             string               `json:"Role,omitempty"`
	Handler          string               `json:"Handler,omitempty"`
	CodeSize         int64                `json:"CodeSize"`
	Description      string               `json:"Description"`
	Timeout          int                  `json:"Timeout"`
	MemorySize       int                  `json:"MemorySize"`
	LastModified     string               `json:"LastModified"`
	CodeSha256       string               `json:"CodeSha256"`
	Version          string               `json:"Version"`
	Environment      *EnvironmentResponse `json:"Environment,omitempty"`
	TracingConfig    TracingConfig        `json:"TracingConfig"`
	RevisionId       string               `json:"RevisionId"`
	State            string               `json:"State"`
	LastUpdateStatus string               `json:"LastUpdateStatus,omitempty"` // none on published versions
	PackageType      string               `json:"PackageType"`
	Architectures    []string             `json:"Architectures"`
	EphemeralStorage EphemeralStorage     `json:"EphemeralStorage"`
	LoggingConfig    LoggingConfig        `json:"LoggingConfig"`
	Layers           []Layer              `json:"Layers,omitempty"`
	DeadLetterConfig *DeadLetterConfig    `json:"DeadLetterConfig,omitempty"`
}

// FunctionCodeLocation is the Code of GetFunction.
type FunctionCodeLocation struct {
	RepositoryType string `json:"RepositoryType"`
	Location       string `json:"Location"`
}

// Concurrency is a function's reserved concurrency (GetFunction, and the
// body of Put/GetFunctionConcurrency).
type Concurrency struct {
	ReservedConcurrentExecutions *int `json:"ReservedConcurrentExecutions,omitempty"`
}

// GetFunctionOutput is the body of GetFunction.
type GetFunctionOutput struct {
	Configuration FunctionConfiguration `json:"Configuration"`
	Code          FunctionCodeLocation  `json:"Code"`
	Tags          map[string]string     `json:"Tags,omitempty"`
	Concurrency   *Concurrency          `json:"Concurrency,omitempty"`
}

// ListFunctionsOutput is the body of ListFunctions.
type ListFunctionsOutput struct {
	Functions  []FunctionConfiguration `json:"Functions"`
	NextMarker *string                 `json:"NextMarker,omitempty"`
}

// PublishVersionInput is the body of PublishVersion (it may be empty).
type PublishVersionInput struct {
	CodeSha256  *string `json:"CodeSha256"`
	Description *string `json:"Description"`
	RevisionId  *string `json:"RevisionId"`
	PublishTo   *string `json:"PublishTo"`
}

// ListVersionsByFunctionOutput is the body of ListVersionsByFunction.
type ListVersionsByFunctionOutput struct {
	Versions   []FunctionConfiguration `json:"Versions"`
	NextMarker *string                 `json:"NextMarker,omitempty"`
}

// AliasRoutingConfiguration is an alias's RoutingConfig.
type AliasRoutingConfiguration struct {
	AdditionalVersionWeights map[string]float64 `json:"AdditionalVersionWeights,omitempty"`
}

// CreateAliasInput is the body of CreateAlias.
type CreateAliasInput struct {
	Name            *string                    `json:"Name"`
	FunctionVersion *string                    `json:"FunctionVersion"`
	Description     *string                    `json:"Description"`
	RoutingConfig   *AliasRoutingConfiguration `json:"RoutingConfig"`
}

// UpdateAliasInput is the body of UpdateAlias; absent fields are kept.
type UpdateAliasInput struct {
	FunctionVersion *string                    `json:"FunctionVersion"`
	Description     *string                    `json:"Description"`
	RoutingConfig   *AliasRoutingConfiguration `json:"RoutingConfig"`
	RevisionId      *string                    `json:"RevisionId"`
}

// AliasConfiguration is how Lambda describes an alias.
type AliasConfiguration struct {
	AliasArn        string                     `json:"AliasArn"`
	Name            string                     `json:"Name"`
	FunctionVersion string                     `json:"FunctionVersion"`
	Description     string                     `json:"Description"`
	RoutingConfig   *AliasRoutingConfiguration `json:"RoutingConfig,omitempty"`
	RevisionId      string                     `json:"RevisionId"`
}

// ListAliasesOutput is the body of ListAliases.
type ListAliasesOutput struct {
	Aliases    []AliasConfiguration `json:"Aliases"`
	NextMarker *string              `json:"NextMarker,omitempty"`
}

// Function states and update statuses.
const (
	StateActive          = "Active"
	LastUpdateSuccessful = "Successful"
	PackageTypeZip       = "Zip"
	VersionLatest        = "$LATEST"
	TimeFormat           = "2006-01-02T15:04:05.000-0700"
)

// AccountLimit is the AccountLimit of GetAccountSettings.
type AccountLimit struct {
	TotalCodeSize                  int64 `json:"TotalCodeSize"`
	CodeSizeUnzipped               int64 `json:"CodeSizeUnzipped"`
	CodeSizeZipped                 int64 `json:"CodeSizeZipped"`
	ConcurrentExecutions           int   `json:"ConcurrentExecutions"`
	UnreservedConcurrentExecutions *int  `json:"UnreservedConcurrentExecutions,omitempty"`
}

// AccountUsage is the AccountUsage of GetAccountSettings.
type AccountUsage struct {
	TotalCodeSize int64 `json:"TotalCodeSize"`
	FunctionCount int64 `json:"FunctionCount"`
}

// AccountSettings is the body of GetAccountSettings.
type AccountSettings struct {
	AccountLimit AccountLimit `json:"AccountLimit"`
	AccountUsage AccountUsage `json:"AccountUsage"`
}
