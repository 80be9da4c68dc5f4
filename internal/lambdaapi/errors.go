// Package lambdaapi holds AWS Lambda's wire types, ARNs, names and error
// shapes. It performs no I/O and imports nothing of Ember's; the edges
// (controlapi, frontend, runtimeapi) turn its values into HTTP.
package lambdaapi

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
)

// Error types that Lambda (and the AWS request layer in front of it) answer
// with. The value is what goes into the X-Amzn-ErrorType header, which the
// AWS SDKs read to pick the exception they raise.
const (
	// Validation is the AWS request layer's answer to a value that breaks
	// a constraint of the API's model (a length, range, pattern or enum):
	// "1 validation error detected: Value ... at '...' failed to satisfy
	// constraint: ...". Lambda's own checks answer InvalidParameterValue.
	Validation                 = "ValidationException"
	InvalidParameterValue      = "InvalidParameterValueException"
	InvalidRequestContent      = "InvalidRequestContentException"
	ResourceNotFound           = "ResourceNotFoundException"
	ResourceConflict           = "ResourceConflictException"
	PreconditionFailed         = "PreconditionFailedException"
	RequestTooLarge            = "RequestTooLargeException"
	UnsupportedMediaType       = "UnsupportedMediaTypeException"
	TooManyRequests            = "TooManyRequestsException"
	Service                    = "ServiceException"
	ResourceNotReady           = "ResourceNotReadyException"
	InvalidZipFile             = "InvalidZipFileException"
	AccessDenied               = "AccessDeniedException"
	UnrecognizedClient         = "UnrecognizedClientException"
	InvalidSignature           = "InvalidSignatureException"
	IncompleteSignature        = "IncompleteSignatureException"
	MissingAuthenticationToken = "MissingAuthenticationTokenException"
	UnknownOperation           = "UnknownOperationException"
)

// statusOf is the HTTP status Lambda answers each error type with.
var statusOf = map[string]int{
	Validation:                 http.StatusBadRequest,
	InvalidParameterValue:      http.StatusBadRequest,
	InvalidRequestContent:      http.StatusBadRequest,
	ResourceNotFound:           http.StatusNotFound,
	ResourceConflict:           http.StatusConflict,
	PreconditionFailed:         http.StatusPreconditionFailed,
	RequestTooLarge:            http.StatusRequestEntityTooLarge,
	UnsupportedMediaType:       http.StatusUnsupportedMediaType,
	TooManyRequests:            http.StatusTooManyRequests,
	Service:                    http.StatusInternalServerError,
	ResourceNotReady:           http.StatusServiceUnavailable,
	InvalidZipFile:             http.StatusBadGateway,
	AccessDenied:               http.StatusForbidden,
	UnrecognizedClient:         http.StatusForbidden,
	InvalidSignature:           http.StatusForbidden,
	IncompleteSignature:        http.StatusForbidden,
	MissingAuthenticationToken: http.StatusForbidden,
	UnknownOperation:           http.StatusNotFound,
}

// Throttle reasons carried in a TooManyRequestsException body.
const (
	ReasonConcurrentInvocationLimitExceeded         = "ConcurrentInvocationLimitExceeded"
	ReasonReservedFunctionConcurrentInvocationLimit = "ReservedFunctionConcurrentInvocationLimitExceeded"
	ReasonCallerRateLimitExceeded                   = "CallerRateLimitExceeded"
	ReasonFunctionInvocationRateLimitExceeded       = "FunctionInvocationRateLimitExceeded"
	ReasonReservedFunctionInvocationRateLimit       = "ReservedFunctionInvocationRateLimitExceeded"
)

// Error is a Lambda error: its type names the exception the SDKs raise.
// It marshals to the JSON body Lambda sends.
type Error struct {
	Type    string `json:"-"`
	Kind    string `json:"Type,omitempty"` // "User" or "Service"
	Message string `json:"message"`
	// Reason and RetryAfterSeconds are set on TooManyRequestsException.
	Reason            string `json:"Reason,omitempty"`
	RetryAfterSeconds string `json:"retryAfterSeconds,omitempty"`
}

func (e *Error) Error() string { return e.Type + ": " + e.Message }

// Status is the HTTP status for the error's type (500 if unknown).
func (e *Error) Status() int {
	if s, ok := statusOf[e.Type]; ok {
		return s
	}
	return http.StatusInternalServerError
}

// Errorf makes an Error of the given type.
func Errorf(typ, format string, args ...any) *Error {
	kind := "User"
	switch typ {
	case Service, ResourceNotReady:
		kind = "Service"
	case Validation:
		kind = "" // the request layer's body has the message alone
	}
	return &Error{Type: typ, Kind: kind, Message: fmt.Sprintf(format, args...)}
}

// Validationf makes a ValidationException: one value that breaks a
// constraint of the API's model. format follows "1 validation error
// detected: ", e.g. "Value '0' at 'timeout' failed to satisfy
// constraint: Member must have value greater than or equal to 1".
func Validationf(format string, args ...any) *Error {
	return Errorf(Validation, "1 validation error detected: "+format, args...)
}

// ParseMaxItems reads a MaxItems query value of 1 to hi; one out of range
// is a ValidationException naming the bound it crossed.
func ParseMaxItems(v string, hi int) (int, error) {
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, Validationf("Value '%s' at 'maxItems' failed to satisfy constraint: Member must have value between 1 and %d",
			truncate(v, 32), hi)
	}
	if n < 1 || n > hi {
		return 0, Validationf("Value '%d' at 'maxItems' failed to satisfy constraint: Member must have value %s", n, Bound(n, 1, hi))
	}
	return n, nil
}

// Bound is how a ValidationException names the bound that n, out of
// [lo, hi], crossed: "greater than or equal to lo" or "less than or equal
// to hi".
func Bound(n, lo, hi int) string {
	if n < lo {
		return "greater than or equal to " + strconv.Itoa(lo)
	}
	return "less than or equal to " + strconv.Itoa(hi)
}

// AsError finds the Lambda error in err's chain; any other error becomes a
// ServiceException whose message does not leak internals.
func AsError(err error) *Error {
	var le *Error
	if errors.As(err, &le) {
		return le
	}
	return Errorf(Service, "An internal error occurred; the request can be retried.")
}
