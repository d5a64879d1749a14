package module

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/recovery"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/sms"

	// The senders built in; outbox is the default.
	_ "github.com/caddy-sms-recovery/caddy-sms-recovery/sms/failover"
	_ "github.com/caddy-sms-recovery/caddy-sms-recovery/sms/http"
	_ "github.com/caddy-sms-recovery/caddy-sms-recovery/sms/messagebird"
	_ "github.com/caddy-sms-recovery/caddy-sms-recovery/sms/outbox"
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
	key    string
	queue  *sms.Queue
	sender sms.Deliverer // the module that started the queue

	// observers are those of the handlers using the queue, oldest first;
	// outcomes go to the newest, which outlives a reload that fails.
	mu        sync.Mutex
	observers []*observer
}

func (p *pooledQueue) observe(o sms.Outcome) {
	if newest := p.newest(); newest != nil {
		newest.deliveryOutcome(o)
	}
}

func (p *pooledQueue) observeTry(t sms.Try) {
	if newest := p.newest(); newest != nil {
		newest.deliveryTry(t)
	}
}

func (p *pooledQueue) newest() *observer {
	p.mu.Lock()
	defer p.mu.Unlock()
	if n := len(p.observers); n > 0 {
		return p.observers[n-1]
	}
	return nil
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

// Destruct drains the queue once no handler uses it, then cleans up its
// sender again: Caddy cleaned it up with its config, which may be long
// gone, and the drain may have opened what that freed (sms.Namespace).
func (p *pooledQueue) Destruct() error {
	ctx, cancel := context.WithTimeout(context.Background(), drainTimeout)
	defer cancel()
	err := p.queue.Close(ctx)
	if c, ok := p.sender.(caddy.CleanerUpper); ok {
		err = errors.Join(err, c.Cleanup())
	}
	return err
}

// smsHoldback keeps each SMS back this long after its request queued it, so
// that delivering a real account's code costs that request nothing a
// decoy's request would not pay: a person does not notice 20ms.
const smsHoldback = 20 * time.Millisecond

// sender loads the sender module and returns the pooled delivery queue for
// its settings; Cleanup releases it. A queue starts when no handler of this
// process uses the same sender and queue size yet, and delivers through the
// module it started with, so that a reload hands the waiting messages over.
func (h *Handler) sender(ctx caddy.Context) (recovery.Sender, error) {
	mod, err := ctx.LoadModule(h, "SenderRaw")
	if err != nil {
		return nil, fmt.Errorf("sms: %w", err)
	}
	d, ok := mod.(sms.Deliverer)
	if !ok {
		return nil, fmt.Errorf("sms: module %s is not a sender (it has no Deliver method)", caddy.GetModuleID(mod))
	}
	// Senders that hand out report URLs sign them for this gateway: one
	// with other URLs is another queue's.
	key, err := poolKey(mod, h.SMSQueue, h.reports.ID())
	if err != nil {
		return nil, fmt.Errorf("sms: %w", err)
	}
	v, _, err := queues.LoadOrNew(key, func() (caddy.Destructor, error) {
		p := &pooledQueue{key: key, sender: d}
		p.queue = sms.NewQueue(d, sms.QueueConfig{Size: h.SMSQueue, Holdback: smsHoldback, Observe: p.observe,
			ObserveTry: p.observeTry, Provider: caddy.GetModuleName(mod)})
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
	return p.queue, nil
}

// poolKey names the pooled state of a guest module: its ID and a SHA-256 of
// its JSON settings and of extra, so that handlers with the same settings
// share the state and a password or access key never shows in a key.
func poolKey(mod any, extra ...any) (string, error) {
	b, err := json.Marshal([]any{mod, extra})
	if err != nil {
		return "", fmt.Errorf("encoding the settings of %s: %w", caddy.GetModuleID(mod), err)
	}
	sum := sha256.Sum256(b)
	return caddy.GetModuleID(mod) + "/" + hex.EncodeToString(sum[:16]), nil
}
