package module

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/recovery"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/sms"
)

// drainTimeout bounds how long the last handler using a queue waits, at
// shutdown, for the messages in it to go out.
const drainTimeout = 10 * time.Second

// queues holds the SMS queues of this process, keyed by everything that
// decides where a message goes. A config reload hands the queue over to the
// new handlers instead of draining it: a code waiting for a provider that
// is having a bad minute still goes out, and the reload does not wait.
var queues = caddy.NewUsagePool()

type pooledQueue struct {
	key   string
	queue *sms.Queue
	close func()

	// observers are those of the handlers using the queue, oldest first;
	// outcomes go to the newest, which outlives a reload that fails.
	mu        sync.Mutex
	observers []*observer
}

func (p *pooledQueue) observe(o sms.Outcome) {
	p.mu.Lock()
	var newest *observer
	if n := len(p.observers); n > 0 {
		newest = p.observers[n-1]
	}
	p.mu.Unlock()
	if newest != nil {
		newest.deliveryOutcome(o)
	}
}

// attach adds a handler's observer and returns the function that takes it
// away again.
func (p *pooledQueue) attach(o *observer) func() {
	p.mu.Lock()
	p.observers = append(p.observers, o)
	p.mu.Unlock()
	return func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		p.observers = slices.DeleteFunc(p.observers, func(x *observer) bool { return x == o })
	}
}

// Destruct drains the queue once no handler uses it.
func (p *pooledQueue) Destruct() error {
	ctx, cancel := context.WithTimeout(context.Background(), drainTimeout)
	defer cancel()
	err := p.queue.Close(ctx)
	if p.close != nil {
		p.close()
	}
	return err
}

// sender returns the pooled delivery queue for the handler's SMS settings;
// Cleanup releases it.
// smsHoldback keeps each SMS back this long after its request queued it, so
// that delivering a real account's code costs that request nothing a
// decoy's request would not pay: a person does not notice 20ms.
const smsHoldback = 20 * time.Millisecond

func (h *Handler) sender() (recovery.Sender, error) {
	key, deliverer := h.deliverer()
	v, _, err := queues.LoadOrNew(key, func() (caddy.Destructor, error) {
		d, closeIdle, err := deliverer()
		if err != nil {
			return nil, err
		}
		p := &pooledQueue{key: key, close: closeIdle}
		p.queue = sms.NewQueue(d, sms.QueueConfig{Size: h.SMS.QueueSize, Holdback: smsHoldback, Observe: p.observe})
		return p, nil
	})
	if err != nil {
		return nil, err
	}
	p := v.(*pooledQueue)
	detach := p.attach(h.observer)
	h.closers = append(h.closers, func() error {
		// The last user drains the queue in Delete, and hears how that went.
		_, err := queues.Delete(p.key)
		detach()
		return err
	})
	if h.SMS.Outbox != "" {
		h.logger.Warn("SMS go to the development outbox file, which holds live codes: configure sms messagebird for production",
			zap.String("outbox", h.SMS.Outbox))
	}
	return p.queue, nil
}

// deliverer returns the pool key of the handler's sender and a function
// that builds it. The key holds a hash of the access key, never the key.
func (h *Handler) deliverer() (string, func() (sms.Deliverer, func(), error)) {
	if mb := h.SMS.MessageBird; mb != nil {
		sum := sha256.Sum256([]byte(mb.AccessKey))
		key := fmt.Sprintf("messagebird/%s/%s/%s/%s/%d", hex.EncodeToString(sum[:8]), mb.Originator, mb.Endpoint,
			time.Duration(mb.Timeout), h.SMS.QueueSize)
		return key, func() (sms.Deliverer, func(), error) {
			d, err := sms.NewMessageBird(sms.MessageBirdConfig{
				AccessKey:  mb.AccessKey,
				Originator: mb.Originator,
				Endpoint:   mb.Endpoint,
				Timeout:    time.Duration(mb.Timeout),
			})
			if err != nil {
				return nil, nil, fmt.Errorf("sms messagebird: %w", err)
			}
			return d, d.CloseIdleConnections, nil
		}
	}
	key := fmt.Sprintf("outbox/%s/%d", h.SMS.Outbox, h.SMS.QueueSize)
	return key, func() (sms.Deliverer, func(), error) {
		d, err := sms.NewOutbox(h.SMS.Outbox, recovery.SystemClock{})
		if err != nil {
			return nil, nil, fmt.Errorf("sms outbox: %w", err)
		}
		return d, func() { _ = d.Close() }, nil
	}
}
