package lambdaapi

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestParseFunctionRef(t *testing.T) {
	ok := []struct {
		in   string
		want FunctionRef
	}{
		{"my-fn", FunctionRef{Name: "my-fn"}},
		{"my_fn:$LATEST", FunctionRef{Name: "my_fn", Qualifier: "$LATEST"}},
		{"my-fn:prod", FunctionRef{Name: "my-fn", Qualifier: "prod"}},
		{"123456789012:function:my-fn", FunctionRef{Account: "123456789012", Name: "my-fn"}},
		{"123456789012:function:my-fn:7", FunctionRef{Account: "123456789012", Name: "my-fn", Qualifier: "7"}},
		{"function:my-fn", FunctionRef{Name: "my-fn"}},
		{"function:my-fn:prod", FunctionRef{Name: "my-fn", Qualifier: "prod"}},
		{"arn:aws:lambda:us-east-1:123456789012:function:my-fn", FunctionRef{Region: "us-east-1", Account: "123456789012", Name: "my-fn"}},
		{"arn:aws:lambda:eu-west-2:123456789012:function:f:$LATEST", FunctionRef{Region: "eu-west-2", Account: "123456789012", Name: "f", Qualifier: "$LATEST"}},
		{strings.Repeat("a", 64), FunctionRef{Name: strings.Repeat("a", 64)}},
	}
	for _, c := range ok {
		got, err := ParseFunctionRef(c.in)
		if err != nil || got != c.want {
			t.Errorf("ParseFunctionRef(%q) = %+v, %v; want %+v", c.in, got, err, c.want)
		}
	}
	bad := []string{
		"", strings.Repeat("a", 65), "my fn", "my-fn:", "my-fn:a:b", "a/b", "../x",
		"arn:aws:lambda:us-east-1:123456789012:function:", "arn:aws:s3:us-east-1:123456789012:function:f",
		"arn:aws:lambda:nowhere:123456789012:function:f", "12345:function:f", "123456789012:function:f:",
		"arn:aws:lambda:us-east-1:123456789012:function:f:q:extra", "f:$LATEST$", "f:" + strings.Repeat("q", 129),
	}
	for _, in := range bad {
		_, err := ParseFunctionRef(in)
		var le *Error
		if !errors.As(err, &le) || le.Type != Validation || le.Status() != 400 || le.Kind != "" {
			t.Errorf("ParseFunctionRef(%q) error = %v; want ValidationException", in, err)
		}
	}
}

func TestValidateEnvironment(t *testing.T) {
	if err := ValidateEnvironment(map[string]string{"A1": "x", "LOG_LEVEL": "debug"}); err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]struct {
		vars map[string]string
		typ  string // the name's pattern is the model's; the rest Lambda's own checks
	}{
		"reserved":  {map[string]string{"AWS_REGION": "x"}, InvalidParameterValue},
		"bad name":  {map[string]string{"1A": "x"}, Validation},
		"too large": {map[string]string{"BIG": strings.Repeat("v", 4094)}, InvalidParameterValue},
	} {
		err := ValidateEnvironment(c.vars)
		var le *Error
		if !errors.As(err, &le) || le.Type != c.typ {
			t.Errorf("%s: got %v", name, err)
		}
		if le != nil && strings.Contains(le.Message, "vvvv") {
			t.Errorf("%s: message leaks a value", name)
		}
	}
}

func TestErrorStatus(t *testing.T) {
	cases := map[string]int{ResourceNotFound: 404, ResourceConflict: 409, RequestTooLarge: 413,
		UnsupportedMediaType: 415, TooManyRequests: 429, Service: 500, InvalidSignature: 403, "Nope": 500}
	for typ, want := range cases {
		if got := Errorf(typ, "x").Status(); got != want {
			t.Errorf("%s: status %d, want %d", typ, got, want)
		}
	}
	if AsError(errors.New("disk on fire")).Type != Service {
		t.Error("plain errors must become ServiceException")
	}
	if strings.Contains(AsError(errors.New("disk on fire")).Message, "fire") {
		t.Error("ServiceException leaks the internal error")
	}
}

func TestNewRequestID(t *testing.T) {
	a, b := NewRequestID(), NewRequestID()
	if a == b || len(a) != 36 || a[14] != '4' || a[8] != '-' {
		t.Fatalf("bad ids %q %q", a, b)
	}
}

func FuzzParseFunctionRef(f *testing.F) {
	for _, s := range []string{"f", "f:1", "123456789012:function:f", "arn:aws:lambda:us-east-1:123456789012:function:f:$LATEST", "::::", "arn:"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ref, err := ParseFunctionRef(s)
		if err != nil {
			return
		}
		if !ValidName(ref.Name) {
			t.Fatalf("accepted invalid name %q from %q", ref.Name, s)
		}
		if strings.ContainsAny(ref.Name+ref.Qualifier+ref.Account, "/:. ") {
			t.Fatalf("unsafe component in %+v from %q", ref, s)
		}
	})
}

// TestValidation: a ValidationException is a 400 whose body is the
// message alone, which starts as the AWS request layer's does, and Bound
// names the bound a value crossed.
func TestValidation(t *testing.T) {
	e := Validationf("Value '%d' at 'timeout' failed to satisfy constraint: Member must have value %s", 0, Bound(0, 1, 900))
	if e.Type != Validation || e.Status() != 400 {
		t.Fatalf("Validationf = %s, status %d", e.Type, e.Status())
	}
	b, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"message":"1 validation error detected: Value '0' at 'timeout' failed to satisfy constraint: Member must have value greater than or equal to 1"}`; string(b) != want {
		t.Fatalf("body %s, want %s", b, want)
	}
	if ipve, _ := json.Marshal(Errorf(InvalidParameterValue, "x")); !strings.Contains(string(ipve), `"Type":"User"`) {
		t.Fatalf("an InvalidParameterValueException's body lost its Type: %s", ipve)
	}
	for _, c := range []struct {
		n    int
		want string
	}{{0, "greater than or equal to 1"}, {901, "less than or equal to 900"}, {-5, "greater than or equal to 1"}} {
		if got := Bound(c.n, 1, 900); got != c.want {
			t.Errorf("Bound(%d, 1, 900) = %q, want %q", c.n, got, c.want)
		}
	}
	for v, want := range map[string]string{
		"0":  "Value '0' at 'maxItems' failed to satisfy constraint: Member must have value greater than or equal to 1",
		"51": "Value '51' at 'maxItems' failed to satisfy constraint: Member must have value less than or equal to 50",
		"x":  "Value 'x' at 'maxItems' failed to satisfy constraint: Member must have value between 1 and 50",
	} {
		_, err := ParseMaxItems(v, 50)
		if le := AsError(err); err == nil || le.Type != Validation || le.Message != "1 validation error detected: "+want {
			t.Errorf("ParseMaxItems(%q, 50) = %v", v, err)
		}
	}
	if n, err := ParseMaxItems("50", 50); n != 50 || err != nil {
		t.Errorf("ParseMaxItems(50, 50) = %d, %v", n, err)
	}
}
