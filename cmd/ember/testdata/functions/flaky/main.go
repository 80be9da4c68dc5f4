// Command flaky is a test function built with aws-lambda-go for the
// asynchronous invocation proofs. Whether an attempt fails is decided by
// the event alone, so a test knows every event's fate in advance:
//
//   - id % 5 == 0: every attempt fails (a returned error);
//   - id % 5 == 1: attempts before failUntil (Unix milliseconds) fail,
//     later ones succeed;
//   - anything else succeeds (after sleeping "ms" milliseconds if set).
//
// Every attempt writes one line "ATTEMPT <id> fail|ok" to the log.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
)

type event struct {
	ID        int   `json:"id"`
	FailUntil int64 `json:"failUntil"`
	MS        int   `json:"ms"`
}

func handle(ctx context.Context, raw json.RawMessage) (any, error) {
	var ev event
	if err := json.Unmarshal(raw, &ev); err != nil {
		return nil, err
	}
	switch {
	case ev.ID%5 == 0:
		fmt.Printf("ATTEMPT %d fail\n", ev.ID)
		return nil, fmt.Errorf("event %d always fails", ev.ID)
	case ev.ID%5 == 1 && time.Now().UnixMilli() < ev.FailUntil:
		fmt.Printf("ATTEMPT %d fail\n", ev.ID)
		return nil, fmt.Errorf("event %d fails until %d", ev.ID, ev.FailUntil)
	}
	if ev.MS > 0 {
		time.Sleep(time.Duration(ev.MS) * time.Millisecond)
	}
	fmt.Printf("ATTEMPT %d ok\n", ev.ID)
	return map[string]any{"id": ev.ID}, nil
}

func main() { lambda.Start(handle) }
