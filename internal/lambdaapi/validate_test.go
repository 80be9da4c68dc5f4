package lambdaapi

import (
	"errors"
	"strings"
	"testing"
)

// Lambda measures the JSON of the variables: {"AA":"<n bytes>"} is 9+n
// bytes. 4,096 is accepted, 4,097 refused, with escapes counted as JSON
// writes them.
func TestEnvironmentLimitEdge(t *testing.T) {
	refusal := "Lambda was unable to configure your environment variables because the environment variables you have provided exceeded the 4KB limit. String measured: "
	for _, tc := range []struct {
		what string
		vars map[string]string
		size int
	}{
		{"one variable at the limit", map[string]string{"AA": strings.Repeat("v", 4087)}, 4096},
		{"one variable over it", map[string]string{"AA": strings.Repeat("v", 4088)}, 4097},
		// {"AA":"..","BB":".."}: 2 + (2+5+a) + 1 + (2+5+b)
		{"two variables at the limit", map[string]string{"AA": strings.Repeat("v", 2000), "BB": strings.Repeat("w", 2079)}, 4096},
		{"two variables over it", map[string]string{"AA": strings.Repeat("v", 2000), "BB": strings.Repeat("w", 2080)}, 4097},
		// A quote is written \" (2 bytes), a newline \n (2), U+0001
		// \u0001 (6), é in UTF-8 (2), < as itself (1, not \u003c).
		{"escapes at the limit", map[string]string{"AA": `"` + "\n\x01é<" + strings.Repeat("v", 4074)}, 4096},
		{"escapes over it", map[string]string{"AA": `"` + "\n\x01é<" + strings.Repeat("v", 4075)}, 4097},
		{"none", nil, 2},
		{"empty", map[string]string{}, 2},
	} {
		if got := EnvironmentSize(tc.vars); got != tc.size {
			t.Errorf("%s: EnvironmentSize = %d, want %d", tc.what, got, tc.size)
		}
		err := ValidateEnvironment(tc.vars)
		if tc.size <= MaxEnvironmentBytes {
			if err != nil {
				t.Errorf("%s (%d bytes): refused: %v", tc.what, tc.size, err)
			}
			continue
		}
		var le *Error
		if !errors.As(err, &le) || le.Type != InvalidParameterValue || !strings.HasPrefix(le.Message, refusal) {
			t.Fatalf("%s (%d bytes): %v", tc.what, tc.size, err)
		}
		if strings.Contains(le.Message, "vvvv") || strings.Contains(le.Message, "wwww") {
			t.Errorf("%s: the message repeats a value: %s", tc.what, le.Message)
		}
	}
	err := ValidateEnvironment(map[string]string{"AA": strings.Repeat("v", 4100), "BB": "secret-value-0123456789"})
	want := refusal + `{"AA":"(4100 bytes)","BB":"(23 bytes)"} (4140 bytes; Ember does not repeat the values)`
	var le *Error
	if !errors.As(err, &le) || le.Message != want {
		t.Errorf("message:\n%v\nwant\n%s", err, want)
	}
}
