package sms_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/recovery"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/sms"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/sms/outbox"
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

	box := &outbox.Outbox{Path: path}
	if err := box.Provision(caddy.Context{}); err != nil {
		panic(err)
	}
	defer box.Cleanup()
	q := sms.NewQueue(box, sms.QueueConfig{
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
	var line struct{ To, Body string }
	if err := json.Unmarshal(b, &line); err != nil {
		panic(err)
	}
	fmt.Printf("%s %q\n", line.To, line.Body)
	// Output:
	// sent code flow-7f3a +31*****678 1
	// +31612345678 "Your code: 123456\n\n@mail.example.com #123456"
}
