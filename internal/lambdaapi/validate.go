package lambdaapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
)

// ReservedEnv are the environment variables Lambda sets itself; functions
// may not set them.
var ReservedEnv = map[string]bool{
	"_HANDLER": true, "_X_AMZN_TRACE_ID": true, "AWS_DEFAULT_REGION": true,
	"AWS_REGION": true, "AWS_EXECUTION_ENV": true, "AWS_LAMBDA_FUNCTION_NAME": true,
	"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": true, "AWS_LAMBDA_FUNCTION_VERSION": true,
	"AWS_LAMBDA_INITIALIZATION_TYPE": true, "AWS_LAMBDA_LOG_GROUP_NAME": true,
	"AWS_LAMBDA_LOG_STREAM_NAME": true, "AWS_ACCESS_KEY": true, "AWS_ACCESS_KEY_ID": true,
	"AWS_SECRET_ACCESS_KEY": true, "AWS_SESSION_TOKEN": true, "AWS_LAMBDA_RUNTIME_API": true,
	"LAMBDA_TASK_ROOT": true, "LAMBDA_RUNTIME_DIR": true,
}

var envNameRE = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9_]+$`)

// ValidateEnvironment checks variables as Lambda does: names, reserved
// names, and 4 KB in total, measured as Lambda measures it
// (EnvironmentSize). Messages never include values.
func ValidateEnvironment(vars map[string]string) error {
	var reserved []string
	for k := range vars {
		if !envNameRE.MatchString(k) {
			return Validationf(
				"Value at 'environment.variables' failed to satisfy constraint: Map keys must satisfy constraint: [Member must satisfy regular expression pattern: [a-zA-Z]([a-zA-Z0-9_])+]")
		}
		if ReservedEnv[k] {
			reserved = append(reserved, k)
		}
	}
	if len(reserved) > 0 {
		sort.Strings(reserved)
		return Errorf(InvalidParameterValue,
			"Lambda was unable to configure your environment variables because the environment variables you have provided contains reserved keys that are currently not supported for modification. Reserved keys used in this request: %s",
			strings.Join(reserved, ", "))
	}
	if size := EnvironmentSize(vars); size > MaxEnvironmentBytes {
		// Lambda's message ends with the JSON it measured, values and
		// all; Ember's gives the names and each value's size instead, so
		// that a secret is not repeated into whatever logs the caller's
		// errors.
		return Errorf(InvalidParameterValue,
			"Lambda was unable to configure your environment variables because the environment variables you have provided exceeded the 4KB limit. String measured: %s (%d bytes; Ember does not repeat the values)",
			envShape(vars), size)
	}
	return nil
}

// EnvironmentSize is what Lambda holds to its 4 KB limit: the length in
// bytes (UTF-8) of the variables serialized as one compact JSON object,
// {"NAME":"value",...}, with JSON's escapes (\" \\ \n \u0001) but not
// HTML's (< stays <).
func EnvironmentSize(vars map[string]string) int {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if vars == nil {
		vars = map[string]string{}
	}
	if err := enc.Encode(vars); err != nil {
		return 0 // a map of strings always encodes
	}
	return b.Len() - 1 // Encode's newline
}

// envShape is the variables as {"NAME":"(N bytes)",...}, in name order.
func envShape(vars map[string]string) string {
	names := make([]string, 0, len(vars))
	for k := range vars {
		names = append(names, k)
	}
	slices.Sort(names)
	parts := make([]string, len(names))
	for i, k := range names {
		parts[i] = fmt.Sprintf("%q:\"(%d bytes)\"", k, len(vars[k]))
	}
	return "{" + strings.Join(parts, ",") + "}"
}
