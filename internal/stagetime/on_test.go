//go:build stagetime

package stagetime

import "testing"

// TestRecord (go test -tags stagetime): points are kept per invoke only
// between Start and Stop.
func TestRecord(t *testing.T) {
	Mark(FrontEnd)
	End()
	Start()
	Mark(ClientStart)
	Mark(ClientDone)
	End()
	Mark(FrontEnd)
	End()
	rows := Stop()
	Mark(FrontEnd)
	End()
	if len(rows) != 2 {
		t.Fatalf("%d invokes recorded, want 2", len(rows))
	}
	if r := rows[0]; r[ClientStart] == 0 || r[ClientDone] < r[ClientStart] || r[FrontEnd] != 0 {
		t.Errorf("first invoke's points: %v", r)
	}
	if r := rows[1]; r[FrontEnd] == 0 || r[ClientStart] != 0 {
		t.Errorf("second invoke's points: %v", r)
	}
	if rows := Stop(); len(rows) != 0 {
		t.Errorf("%d invokes recorded after Stop", len(rows))
	}
}
