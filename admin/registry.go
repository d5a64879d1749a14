package admin

import (
	"context"
	"maps"
	"slices"
	"sync"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/limiter"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/recovery"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/storage"
)

// gateways holds the abuse guards of the gateway handlers running in this
// process. Caddy makes admin API modules apart from any handler, so this is
// how the admin API reaches the locks.
var gateways = newGuardRegistry()

// Observer hears of the locks lifted and imposed through the admin API:
// the gateway's logs, metrics and events.
type Observer interface {
	Observe(ctx context.Context, ev recovery.Event)
}

// LossKeeper is a store that notices when its server loses its state and
// then refuses work until an operator acknowledges the loss (the Redis
// store).
type LossKeeper interface {
	StateLoss() (storage.Loss, bool)
	AcknowledgeLoss(ctx context.Context) (bool, error)
}

// Notifier tells the phone of an account that support locked its
// recovery, and reports whether a notice went to a real phone: the
// gateway's recovery.Service.
type Notifier interface {
	NotifyImposedLock(ctx context.Context, account string, ev recovery.Event) bool
}

// Register makes the locks of a gateway handler using the store with
// storeKey visible to the admin API, reporting lifts and imposed locks to
// o and telling phones of imposed locks through n; and, when store is a
// LossKeeper, its losses of state. Handlers on one store share its locks,
// so the admin API lists, lifts and imposes them once per store, through
// the newest handler. The handler calls the returned function from its
// Cleanup; calling it again does nothing.
func Register(storeKey string, g *limiter.Guard, o Observer, n Notifier, store any) (unregister func() error) {
	return gateways.register(storeKey, g, o, n, store)
}

// guardRegistry maps the key of a store to the
// handlers that use that store, oldest first. Handlers on one store share
// its locks, so the admin API lists and lifts them once per store, through
// the newest handler.
//
// Like caddy.UsagePool, an entry lives while any handler holds it: during a
// config reload the new handlers register before the old ones unregister,
// so the locks never drop out of the admin API's sight. Store keys are a
// module ID and a hash of its settings (see poolKey in package module):
// they are looked up here, never shown.
type guardRegistry struct {
	mu      sync.Mutex
	byStore map[string][]*guardEntry
}

// guardEntry is one handler's view of a store: its guard, its observer,
// which reports the locks lifted and imposed through it, and its notifier.
type guardEntry struct {
	guard    *limiter.Guard
	observer Observer
	losses   LossKeeper     // nil for a store that does not keep them
	trails   storage.Trails // nil for a store that does not keep them
	notifier Notifier
}

func newGuardRegistry() *guardRegistry {
	return &guardRegistry{byStore: make(map[string][]*guardEntry)}
}

// register adds the guard, observer and notifier of a handler using the
// store with storeKey. The handler calls the returned function from
// Cleanup; calling it again does nothing.
func (r *guardRegistry) register(storeKey string, g *limiter.Guard, o Observer, n Notifier, store any) (unregister func() error) {
	e := &guardEntry{guard: g, observer: o, notifier: n}
	e.losses, _ = store.(LossKeeper)
	e.trails, _ = store.(storage.Trails)
	r.mu.Lock()
	r.byStore[storeKey] = append(r.byStore[storeKey], e)
	r.mu.Unlock()
	return func() error {
		r.mu.Lock()
		defer r.mu.Unlock()
		left := slices.DeleteFunc(r.byStore[storeKey], func(x *guardEntry) bool { return x == e })
		if len(left) == 0 {
			delete(r.byStore, storeKey)
		} else {
			r.byStore[storeKey] = left
		}
		return nil
	}
}

// current returns the newest entry of every store, ordered by store key so
// that listings come out in a stable order.
func (r *guardRegistry) current() []*guardEntry {
	r.mu.Lock()
	defer r.mu.Unlock()
	keys := slices.Sorted(maps.Keys(r.byStore))
	out := make([]*guardEntry, len(keys))
	for i, k := range keys {
		list := r.byStore[k]
		out[i] = list[len(list)-1]
	}
	return out
}

// holds reports whether e is still registered: a store whose last handler
// left while a request was using it (a config reload) is gone, and its
// errors (a closed client) are not the answer's.
func (r *guardRegistry) holds(e *guardEntry) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, list := range r.byStore {
		if slices.Contains(list, e) {
			return true
		}
	}
	return false
}
