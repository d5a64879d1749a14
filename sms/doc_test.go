package sms_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/clock"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/recovery"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/sms"
)

// A Queue in front of an Outbox, as in development: Send returns at once,
// the outcome is reported without the body or the full number, and Close
// waits for the queue to drain.
func Example() {
	dir, err := os.MkdirTemp("", "outbox")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "outbox.jsonl")

	clk := clock.NewManual(time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC))
	outbox, err := sms.NewOutbox(path, clk)
	if err != nil {
		panic(err)
	}
	q := sms.NewQueue(outbox, sms.QueueConfig{
		Clock: clk,
		Observe: func(o sms.Outcome) {
			fmt.Println(o.Result, o.Kind, o.Reference, o.Phone, o.Attempts)
		},
	})
	err = q.Send(context.Background(), recovery.Message{
		Kind:      "code",
		To:        "+31612345678",
		Body:      "Your code: 123456\n\n@mail.example.com #123456",
		Reference: "flow-7f3a",
	})
	if err != nil {
		panic(err)
	}
	if err := q.Close(context.Background()); err != nil {
		panic(err)
	}

	b, err := os.ReadFile(path)
	if err != nil {
		panic(err)
	}
	fmt.Print(string(b))
	// Output:
	// sent code flow-7f3a +31*****678 1
	// {"to":"+31612345678","body":"Your code: 123456\n\n@mail.example.com #123456","time":"2026-01-01T12:00:00Z"}
}
