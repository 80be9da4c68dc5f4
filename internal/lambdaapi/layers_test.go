package lambdaapi

import (
	"strings"
	"testing"
)

func TestParseLayerName(t *testing.T) {
	for in, want := range map[string]LayerRef{
		"my-layer_1": {Name: "my-layer_1"},
		"arn:aws:lambda:us-east-1:123456789012:layer:x": {Region: "us-east-1", Account: "123456789012", Name: "x"},
	} {
		got, err := ParseLayerName(in)
		if err != nil || got != want {
			t.Errorf("ParseLayerName(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "a.b", "a:1", "arn:aws:lambda:us-east-1:123456789012:layer:x:1",
		"arn:aws:lambda:us-east-1:12345:layer:x", "arn:aws:lambda:us-east-1:123456789012:function:x", strings.Repeat("a", 141)} {
		if _, err := ParseLayerName(in); err == nil || AsError(err).Type != Validation {
			t.Errorf("ParseLayerName(%q): %v", in, err)
		}
	}
}

func TestCheckFunctionLayers(t *testing.T) {
	arn := func(name, v string) string { return "arn:aws:lambda:us-east-1:123456789012:layer:" + name + ":" + v }
	refs, err := CheckFunctionLayers([]string{arn("a", "1"), arn("b", "12")})
	if err != nil || len(refs) != 2 || refs[1].Name != "b" || refs[1].Version != 12 || refs[0].Account != "123456789012" {
		t.Fatalf("%+v %v", refs, err)
	}
	for _, c := range []struct {
		in  []string
		msg string
	}{
		{[]string{arn("a", "1"), arn("b", "1"), arn("c", "1"), arn("d", "1"), arn("e", "1"), arn("f", "1")}, "Cannot reference more than 5 layers."},
		{[]string{arn("a", "1"), arn("a", "2")}, "Two different versions of the same layer"},
		{[]string{arn("a", "1"), arn("a", "1")}, "Two different versions of the same layer"},
		{[]string{arn("a", "0")}, "failed to satisfy constraint"},
		{[]string{arn("a", "x")}, "failed to satisfy constraint"},
		{[]string{arn("a.b", "1")}, "failed to satisfy constraint"},
		{[]string{arn(strings.Repeat("a", 100), "1")}, "failed to satisfy constraint"},
		{[]string{""}, "failed to satisfy constraint"},
	} {
		if _, err := CheckFunctionLayers(c.in); err == nil || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%v: %v; want %q", c.in, err, c.msg)
		}
	}
	if refs, err := CheckFunctionLayers(nil); err != nil || len(refs) != 0 {
		t.Fatalf("no layers: %v %v", refs, err)
	}
}

func TestCheckLayerCompatibility(t *testing.T) {
	if err := CheckLayerCompatibility([]string{"python3.12", "nodejs20.x", "provided.al2023"}, []string{"x86_64", "arm64"}); err != nil {
		t.Fatal(err)
	}
	for _, c := range [][2][]string{
		{{"Python3"}, nil}, {nil, {"sparc"}}, {nil, {"x86_64", "arm64", "x86_64"}}, {make([]string, 16), nil},
	} {
		if err := CheckLayerCompatibility(c[0], c[1]); err == nil {
			t.Errorf("%v accepted", c)
		}
	}
}
