package logs

import "testing"

func TestPatterns(t *testing.T) {
	for _, tc := range []struct {
		pattern, msg string
		want         bool
	}{
		{"", "anything", true},
		{"ERROR", "an ERROR here", true},
		{"ERROR", "an error here", false},
		{"ERROR disk", "ERROR: disk full", true},
		{"ERROR disk", "ERROR: memory", false},
		{`"Task timed out"`, "x Task timed out after 1.00 seconds", true},
		{`"Task timed out"`, "Task: timed out", false},
		{"?ERROR ?WARN", "WARN low", true},
		{"?ERROR ?WARN", "INFO", false},
		{"ERROR -retry", "ERROR, will retry", false},
		{"ERROR -retry", "ERROR, giving up", true},
		{"%time[dr]out%", "a timedout", true},
		{"%time[dr]out%", "a timeout", false},
		{"%^REPORT%", "END RequestId", false},
	} {
		p, err := parsePattern(tc.pattern)
		if err != nil {
			t.Fatalf("%q: %v", tc.pattern, err)
		}
		if got := p.match(tc.msg); got != tc.want {
			t.Errorf("%q on %q: %v", tc.pattern, tc.msg, got)
		}
	}
	for _, bad := range []string{`{ $.a = 1 }`, `[ip, user]`, `"unclosed`, `%(%`, `%x`} {
		if _, err := parsePattern(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestSubjectsRoundTrip(t *testing.T) {
	subj, err := subject("123456789012", "/aws/lambda/f.n*>", "2026/01/02/[$LATEST]abc def")
	if err != nil {
		t.Fatal(err)
	}
	g, s, ok := parseSubject(subj)
	if !ok || g != "/aws/lambda/f.n*>" || s != "2026/01/02/[$LATEST]abc def" {
		t.Fatalf("%s -> %q %q %v", subj, g, s, ok)
	}
	for _, bad := range [][3]string{{"", "g", "s"}, {"a.b", "g", "s"}, {"a", "", "s"}, {"a", "g", ""}, {"a*", "g", "s"}} {
		if _, err := subject(bad[0], bad[1], bad[2]); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestSplitBatches(t *testing.T) {
	var evs []storedEvent
	for range 25000 {
		evs = append(evs, storedEvent{})
	}
	parts := split(evs)
	if len(parts) != 3 || len(parts[0]) != maxBatchEvents || len(parts[2]) != 5000 {
		t.Fatalf("%d parts", len(parts))
	}
	big := make([]storedEvent, 5)
	for i := range big {
		big[i].M = string(make([]byte, 100<<10))
	}
	if parts := split(big); len(parts) != 3 { // two of 100 KB per 256 KB message
		t.Fatalf("%d parts of big events", len(parts))
	}
}

func TestBatchEncoding(t *testing.T) {
	b := batch{Ingestion: 1700000000123, Events: []storedEvent{
		{T: 1700000000000, M: "plain\n"}, {T: -5, M: ""}, {T: 1, M: "\x00\xff<&>\"\\ not utf-8 \xc3"},
	}}
	got, err := decodeBatch(encodeBatch(b))
	if err != nil || got.Ingestion != b.Ingestion || len(got.Events) != 3 {
		t.Fatalf("%+v %v", got, err)
	}
	for i := range b.Events {
		if got.Events[i] != b.Events[i] {
			t.Fatalf("event %d: %+v", i, got.Events[i])
		}
	}
	enc := encodeBatch(b)
	for n := range len(enc) {
		if _, err := decodeBatch(enc[:n]); err == nil {
			t.Fatalf("a batch cut at %d bytes decoded", n)
		}
	}
}

func FuzzDecodeBatch(f *testing.F) {
	f.Add(encodeBatch(batch{Ingestion: 1, Events: []storedEvent{{T: 2, M: "x"}}}))
	f.Add([]byte{1, 0, 200, 200, 200, 200, 1})
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := decodeBatch(data)
		if err == nil {
			if again, err := decodeBatch(encodeBatch(b)); err != nil || len(again.Events) != len(b.Events) {
				t.Fatalf("round trip: %v", err)
			}
		}
	})
}

func FuzzPattern(f *testing.F) {
	for _, s := range []string{"ERROR", `"a b" ?c -d`, "%a+%", `{ $.x = 1 }`, `"`, "?", "-", "% %"} {
		f.Add(s, "a b c")
	}
	f.Fuzz(func(t *testing.T, pattern, msg string) {
		if p, err := parsePattern(pattern); err == nil {
			p.match(msg)
		}
	})
}

func FuzzPosition(f *testing.F) {
	f.Add("12-3")
	f.Add("-1")
	f.Fuzz(func(t *testing.T, s string) {
		if p, ok := parsePosition(s); ok {
			if q, ok := parsePosition(p.String()); !ok || q != p {
				t.Fatalf("%q -> %v -> %v", s, p, q)
			}
		}
	})
}
