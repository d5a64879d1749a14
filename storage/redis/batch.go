package redisstore

import (
	"context"
	"sync"

	"github.com/redis/go-redis/v9"
)

// batcher sends the scripts that concurrent requests run to Redis
// together. While one batch is on the wire, the scripts that arrive wait in
// a queue; once its replies are in, the first of them sends the whole queue
// as one pipeline. A lone request goes out at once, with no added wait, and
// under load n requests cost one write and one read on one connection
// rather than n of each: that is most of what a request costs the gateway
// on Redis (docs/performance.md). Each script still runs on its own,
// atomically, on the server: a batch only shares the round trip.
//
// No goroutine is started: the caller whose script leads a batch sends it,
// and hands the next batch to its first caller. Each caller gets the reply
// to its own script; a batch that fails to reach the server fails every
// script in it, each with the error, so every request answers 503 and a
// retry redoes it whole.
type batcher struct {
	send func(ctx context.Context, batch []*scriptCall)

	mu      sync.Mutex
	queue   []*scriptCall
	sending bool
}

// scriptCall is one script to run and, once its batch is back, its reply.
type scriptCall struct {
	ctx    context.Context
	script *redis.Script
	keys   []string
	args   []any
	cmd    *redis.Cmd
	// turn tells a queued call that its batch is back (true), or that it
	// leads the next batch and must send it (false).
	turn chan bool
}

// run runs script in the next batch and returns its reply.
func (b *batcher) run(ctx context.Context, script *redis.Script, keys []string, args []any) *redis.Cmd {
	c := &scriptCall{ctx: ctx, script: script, keys: keys, args: args, turn: make(chan bool, 1)}
	b.mu.Lock()
	b.queue = append(b.queue, c)
	lead := !b.sending
	b.sending = true
	b.mu.Unlock()
	if lead || !<-c.turn {
		b.flush(c)
	}
	return c.cmd
}

// flush sends the queue as one batch, hands the queue that built up
// meanwhile to its first call, and tells every other call of the batch
// that its reply is in. The caller's own call, self, is in the batch.
func (b *batcher) flush(self *scriptCall) {
	b.mu.Lock()
	batch := b.queue
	b.queue = make([]*scriptCall, 0, cap(batch))
	b.mu.Unlock()

	// The batch is everyone's: one caller giving up must not fail the
	// others, and the client's timeouts bound the wait.
	b.send(context.WithoutCancel(batch[0].ctx), batch)

	b.mu.Lock()
	if len(b.queue) > 0 {
		b.queue[0].turn <- false
	} else {
		b.sending = false
	}
	b.mu.Unlock()
	for _, c := range batch {
		if c != self {
			c.turn <- true // buffered: each call is told once
		}
	}
}
