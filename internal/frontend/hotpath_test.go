package frontend

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"github.com/emberfn/ember/internal/invoke"
	"github.com/emberfn/ember/internal/lambdaapi"
)

// parseFunctionRef agrees with lambdaapi.ParseFunctionRef on everything.
func FuzzParseFunctionRef(f *testing.F) {
	for _, s := range []string{"f", "my-fn_1", "f:1", "f:$LATEST", "123456789012:function:f", "arn:aws:lambda:us-east-1:123456789012:function:f:live",
		"", strings.Repeat("a", 64), strings.Repeat("a", 65), "a.b", "a b", "é", "arn", "arn:x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, gotErr := parseFunctionRef(s)
		want, wantErr := lambdaapi.ParseFunctionRef(s)
		if got != want || (gotErr == nil) != (wantErr == nil) {
			t.Fatalf("%q: got %+v, %v; want %+v, %v", s, got, gotErr, want, wantErr)
		}
	})
}

// The request body is read whole, with or without a Content-Length; a body
// cut short is InvalidRequestContentException and one over the limit
// RequestTooLargeException.
func TestReadBody(t *testing.T) {
	big := bytes.Repeat([]byte("x"), MaxRequestPayload+1)
	for _, c := range []struct {
		name     string
		body     io.Reader
		length   int64
		want     string
		errType  string
		chunked  bool
		overflow bool
	}{
		{name: "sized", body: strings.NewReader(`{"a":1}`), length: 7, want: `{"a":1}`},
		{name: "empty", body: strings.NewReader(``), length: 0, want: ``},
		{name: "chunked", body: strings.NewReader(`{"a":1}`), length: -1, want: `{"a":1}`},
		{name: "cut short", body: strings.NewReader(`{"a"`), length: 7, errType: lambdaapi.InvalidRequestContent},
		{name: "too large declared", body: bytes.NewReader(big), length: int64(len(big)), errType: lambdaapi.RequestTooLarge},
		{name: "too large chunked", body: bytes.NewReader(big), length: -1, errType: lambdaapi.RequestTooLarge},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", "/2015-03-31/functions/f/invocations", c.body)
			r.ContentLength = c.length
			got, err := readBody(httptest.NewRecorder(), r)
			if c.errType != "" {
				if le := lambdaapi.AsError(err); err == nil || le.Type != c.errType {
					t.Fatalf("error %v, want %s", err, c.errType)
				}
				return
			}
			if err != nil || string(got) != c.want {
				t.Fatalf("got %q, %v; want %q", got, err, c.want)
			}
		})
	}
}

// The response headers set without Header.Set are in canonical form, so
// that clients (and Header.Get) find them.
func TestResponseHeadersCanonical(t *testing.T) {
	s := New(Config{Auth: trustAll{}, Counter: &fakeCounter{}, Pool: &fakePool{}, Functions: newFakeFunctions()})
	for _, version := range []string{"3", lambdaapi.VersionLatest} {
		w := httptest.NewRecorder()
		w.Header()[hdrRequestID] = []string{"r"}
		_ = s.writeResult(w, "", version, &invoke.Result{Payload: []byte(`{}`)})
		h := w.Result().Header
		for k := range h {
			if k != http.CanonicalHeaderKey(k) {
				t.Errorf("header %q is not canonical", k)
			}
		}
		want := http.Header{"Content-Type": {"application/json"}, "X-Amz-Executed-Version": {version}, "X-Amzn-Requestid": {"r"}}
		if !reflect.DeepEqual(h, want) || h.Get("X-Amzn-RequestId") != "r" {
			t.Fatalf("headers %v", h)
		}
	}
}
