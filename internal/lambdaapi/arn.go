package lambdaapi

import (
	"fmt"
	"regexp"
	"strings"
)

// Partition is the ARN partition Ember uses, so ARNs look like Lambda's.
const Partition = "aws"

var (
	nameRE      = regexp.MustCompile(`^[a-zA-Z0-9_-]{1,64}$`)
	qualifierRE = regexp.MustCompile(`^(\$LATEST|[a-zA-Z0-9_-]{1,128})$`)
	accountRE   = regexp.MustCompile(`^[0-9]{12}$`)
	regionRE    = regexp.MustCompile(`^[a-z]{2}(-gov)?-[a-z]+-[0-9]$`)
)

// FunctionRef is a function named by a caller: a name, a partial ARN
// (ACCOUNT:function:NAME) or a full ARN, each with an optional qualifier.
// Account and Region are empty when the caller did not give them.
type FunctionRef struct {
	Region    string
	Account   string
	Name      string
	Qualifier string
}

// ValidName reports whether s is a valid function name.
func ValidName(s string) bool { return nameRE.MatchString(s) }

// ParseFunctionRef parses the FunctionName of a request.
func ParseFunctionRef(s string) (FunctionRef, error) {
	bad := func() (FunctionRef, error) {
		return FunctionRef{}, Validationf(
			"Value '%s' at 'functionName' failed to satisfy constraint: Member must satisfy regular expression pattern: (arn:(aws[a-zA-Z-]*)?:lambda:)?([a-z]{2}(-gov)?-[a-z]+-\\d{1}:)?(\\d{12}:)?(function:)?([a-zA-Z0-9-_]+)(:(\\$LATEST|[a-zA-Z0-9-_]+))?", truncate(s, 170))
	}
	if len(s) == 0 || len(s) > 170 {
		return bad()
	}
	parts := strings.Split(s, ":")
	var ref FunctionRef
	hasQual := false
	switch {
	case parts[0] == "arn":
		// arn:PARTITION:lambda:REGION:ACCOUNT:function:NAME[:QUALIFIER]
		if len(parts) < 7 || len(parts) > 8 || !strings.HasPrefix(parts[1], "aws") ||
			parts[2] != "lambda" || parts[5] != "function" {
			return bad()
		}
		ref.Region, ref.Account, ref.Name = parts[3], parts[4], parts[6]
		if hasQual = len(parts) == 8; hasQual {
			ref.Qualifier = parts[7]
		}
		if !regionRE.MatchString(ref.Region) {
			return bad()
		}
	case len(parts) >= 3 && parts[1] == "function":
		// ACCOUNT:function:NAME[:QUALIFIER]
		if len(parts) > 4 {
			return bad()
		}
		ref.Account, ref.Name = parts[0], parts[2]
		if hasQual = len(parts) == 4; hasQual {
			ref.Qualifier = parts[3]
		}
	case parts[0] == "function" && len(parts) >= 2:
		// function:NAME[:QUALIFIER]: Lambda's pattern takes the optional
		// "function:" first, so "function:x" is the function x.
		if len(parts) > 3 {
			return bad()
		}
		ref.Name = parts[1]
		if hasQual = len(parts) == 3; hasQual {
			ref.Qualifier = parts[2]
		}
	default:
		// NAME[:QUALIFIER]
		if len(parts) > 2 {
			return bad()
		}
		ref.Name = parts[0]
		if hasQual = len(parts) == 2; hasQual {
			ref.Qualifier = parts[1]
		}
	}
	if ref.Account != "" && !accountRE.MatchString(ref.Account) {
		return bad()
	}
	if !nameRE.MatchString(ref.Name) {
		return bad()
	}
	if hasQual && !qualifierRE.MatchString(ref.Qualifier) {
		return bad()
	}
	return ref, nil
}

// FunctionARN is the unqualified ARN of a function.
func FunctionARN(region, account, name string) string {
	return fmt.Sprintf("arn:%s:lambda:%s:%s:function:%s", Partition, region, account, name)
}

// QualifiedARN is the ARN of a version or alias of a function (the
// unqualified ARN if qualifier is empty).
func QualifiedARN(region, account, name, qualifier string) string {
	arn := FunctionARN(region, account, name)
	if qualifier != "" {
		arn += ":" + qualifier
	}
	return arn
}

var (
	queryQualifierRE = regexp.MustCompile(`^[a-zA-Z0-9$_-]{1,128}$`)
	versionRE        = regexp.MustCompile(`^[0-9]+$`)
	aliasNameRE      = regexp.MustCompile(`^[a-zA-Z0-9_-]{1,128}$`)
)

// CheckQualifier validates a Qualifier parameter as Lambda does.
func CheckQualifier(q string) error {
	if !queryQualifierRE.MatchString(q) {
		return Validationf(
			"Value '%s' at 'qualifier' failed to satisfy constraint: Member must satisfy regular expression pattern: (|[a-zA-Z0-9$_-]+)", truncate(q, 128))
	}
	return nil
}

// IsVersionNumber reports whether a qualifier names a published version
// (all digits) rather than $LATEST or an alias.
func IsVersionNumber(q string) bool { return versionRE.MatchString(q) }

// CheckAliasName validates an alias name: Lambda's pattern
// (?!^[0-9]+$)([a-zA-Z0-9-_]+), 1 to 128 characters.
func CheckAliasName(name string) error {
	if !aliasNameRE.MatchString(name) || versionRE.MatchString(name) {
		return Validationf(
			"Value '%s' at 'name' failed to satisfy constraint: Member must satisfy regular expression pattern: (?!^[0-9]+$)([a-zA-Z0-9-_]+)", truncate(name, 128))
	}
	return nil
}

// CheckFunctionVersion validates the FunctionVersion of an alias:
// $LATEST or a version number.
func CheckFunctionVersion(v string) error {
	if v != VersionLatest && (!versionRE.MatchString(v) || len(v) > 1024) {
		return Validationf(
			"Value '%s' at 'functionVersion' failed to satisfy constraint: Member must satisfy regular expression pattern: (\\$LATEST|[0-9]+)", truncate(v, 128))
	}
	return nil
}

// RoleARNValid reports whether s looks like an IAM role ARN, as Lambda
// checks it.
func RoleARNValid(s string) bool { return roleRE.MatchString(s) }

var roleRE = regexp.MustCompile(`^arn:(aws[a-zA-Z-]*)?:iam::\d{12}:role/?[a-zA-Z_0-9+=,.@\-_/]+$`)

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
