package redisstore

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/recovery"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/storage"
)

// How the store notices a server that lost its state.
//
// A persistent server can still come back without its data: a restart
// whose files were lost, a Sentinel failover to a replica that was empty or
// behind, a FLUSHALL, a restore of an older snapshot. The locks, the runs
// of wrong codes and the counters are then gone, and a gateway that went on
// would hand every locked account fresh guesses. So the deployment keeps
// one more key, P{Precovery}:epoch, a hash with no time to live:
//
//	id     random, written when the key is first made and at each acknowledgement
//	seq    counted up by every plan that strikes (counts a wrong code)
//	lost   the time (ms) a loss was noticed; present while it is not acknowledged
//	acked  1 once an operator has acknowledged a loss and set this id
//
// Each store remembers the id it found and the highest seq a reply of the
// server has shown it (its floor). Every plan (one per request, see
// planScript) first reads the hash, and a plan that strikes counts seq up,
// in the same script: a server that still has the deployment's state
// answers the same id and a seq no lower than the floor (above it, for a
// plan that counted), since seq only grows and the floor was a reply that
// came before the plan was sent. A missing or other id (a restart without
// data, a flush, a failover to an empty replica) or a seq below the floor
// (a restore, or a replica that lacks strikes the store was told of) is a
// loss: the script sets lost and refuses the plan, and so does every later
// plan of every instance until an operator acknowledges the loss. The
// check costs one HMGET inside the script the request runs anyway, and one
// HINCRBY in a plan that strikes: no round trip. Starts and counters lost
// to a server gone back in time are not noticed until a strike's count is
// found lost with them; that only refuses a person or hands out a few more
// starts, while a strike lost would hand out guesses.
//
// On a Sentinel deployment a plan refused for a loss is first checked
// with the master the sentinels name (sentinel.go): a connection that
// still reaches a server they no longer name (an old primary back without
// its data) finds no epoch there, but when that master holds the epoch
// intact nothing was lost. The request is then refused as unavailable, no
// loss is noticed, and the connections to the stale server are closed. A
// master that lost the epoch, or sentinels that do not name one by a
// majority, leave the loss declared as anywhere else. A store that starts
// does not adopt an epoch it made, or found lost, on such a stale server.
//
// An acknowledgement writes a new id, marked acked, and moves seq past any
// floor (to the time in ms times 1000). An instance that finds such an id
// where it expected another adopts it: the operator has decided the state
// is to be trusted again. An id that is not marked acked is adopted by no
// store that knew another: a restarted instance that found the key gone
// made it, and the others call that a loss.
//
// Limits: a store that starts (a process, not a reload) when the key is
// already gone cannot tell a loss from a new deployment, and makes the key
// afresh; any other instance that knew the old id calls it a loss, but a
// lone instance restarted with its Redis (a host reboot) does not. That is
// why the server must persist its data (see safety.go). A loss while
// no request comes is noticed at the next request.

// epochState is the deployment's epoch as one store knows it.
type epochState struct {
	id    string
	floor atomic.Int64
}

// raise sees the highest seq a reply has shown.
func (e *epochState) raise(seq int64) {
	for {
		f := e.floor.Load()
		if seq <= f || e.floor.CompareAndSwap(f, seq) {
			return
		}
	}
}

// alarms keeps the watchers of a store.
type alarms struct {
	mu       sync.Mutex
	next     int
	watchers map[int]func(storage.Alarm)
}

// Watch calls fn with each alarm the store raises, until the returned
// function is called. Watchers are called one after the other, on the
// goroutine that noticed; they must not block.
func (r *Store) Watch(fn func(storage.Alarm)) (stop func() error) {
	a := &r.alarms
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.watchers == nil {
		a.watchers = map[int]func(storage.Alarm){}
	}
	id := a.next
	a.next++
	a.watchers[id] = fn
	return func() error {
		a.mu.Lock()
		defer a.mu.Unlock()
		delete(a.watchers, id)
		return nil
	}
}

func (r *Store) raise(al storage.Alarm) {
	a := &r.alarms
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, fn := range a.watchers {
		fn(al)
	}
}

// StateLoss returns the loss this store has noticed and that is not
// acknowledged yet, if any.
func (r *Store) StateLoss() (storage.Loss, bool) {
	if l := r.lost.Load(); l != nil {
		return *l, true
	}
	return storage.Loss{}, false
}

// noticeLoss records a loss and raises its alarm, once per loss.
func (r *Store) noticeLoss(detail string) {
	l := &storage.Loss{Since: r.clock.Now(), Detail: detail}
	if r.lost.CompareAndSwap(nil, l) {
		r.raise(storage.Alarm{Kind: storage.AlarmStateLost, Detail: detail})
	}
}

// clearLoss forgets a loss that an operator acknowledged.
func (r *Store) clearLoss(detail string) {
	if r.lost.Swap(nil) != nil {
		r.raise(storage.Alarm{Kind: storage.AlarmLossAcknowledged, Detail: detail})
	}
}

func (r *Store) epochKey() string { return r.base + "epoch" }

// learnEpoch reads the deployment's epoch, making it on a new deployment,
// unless the store knows it already: at load, and before the first plan of
// a store that could not reach the server then.
func (r *Store) learnEpoch(ctx context.Context) (*epochState, error) {
	// Requests that come before the epoch is known each ask, with no lock
	// held: while the server is down, none waits on another's timeout. The
	// script is atomic, so they all find the same id.
	if e := r.epoch.Load(); e != nil {
		return e, nil
	}
	fresh := rand.Text()
	res, err := r.run(ctx, epochScript, []string{r.epochKey()}, "learn", fresh, r.clock.Now().UnixMilli()).Slice()
	if err != nil {
		return nil, redisError("read epoch", err)
	}
	if len(res) != 3 {
		return nil, errors.New("read epoch: malformed reply from redis")
	}
	id, _ := res[0].(string)
	seq, _ := strconv.ParseInt(fmt.Sprint(res[1]), 10, 64)
	// An epoch made just now or found lost may be a stale server's, when
	// the master the sentinels name holds another that is not lost.
	if (id == fresh || res[2] != nil) && r.staleAnswer(ctx, func(m masterEpoch) bool { return m.id != "" && m.id != id && !m.lost }) {
		return nil, errStale("read epoch")
	}
	e := &epochState{id: id}
	e.floor.Store(seq)
	if !r.epoch.CompareAndSwap(nil, e) {
		return r.epoch.Load(), nil
	}
	if res[2] != nil {
		r.noticeLoss("the store's state was found lost and not yet acknowledged")
	}
	return e, nil
}

// Epoch reads (or, on a new deployment, makes) the deployment's epoch, so
// that a loss from now on is noticed. The module calls it at load.
func (r *Store) Epoch(ctx context.Context) error {
	_, err := r.learnEpoch(ctx)
	return err
}

// AcknowledgeLoss is an operator's word that the state the server has now
// is to be trusted: plans run again, on this instance at once and on the
// others at their next request (which raise AlarmLossAcknowledged; this
// one raises none: its caller reports who acknowledged). It reports
// whether there was a loss to acknowledge. Locks and counts that were lost stay lost: support may
// impose locks again on accounts it knows were under attack.
func (r *Store) AcknowledgeLoss(ctx context.Context) (bool, error) {
	id := rand.Text()
	res, err := r.run(ctx, epochScript, []string{r.epochKey()}, "ack", id, r.clock.Now().UnixMilli()).Slice()
	if err != nil {
		return false, redisError("acknowledge loss", err)
	}
	if len(res) != 2 {
		return false, errors.New("acknowledge loss: malformed reply from redis")
	}
	if done, _ := res[0].(int64); done != 1 {
		// Nothing lost on the server: another instance may have
		// acknowledged it already.
		_, err := r.stillLost(ctx)
		return false, err
	}
	seq, _ := strconv.ParseInt(fmt.Sprint(res[1]), 10, 64)
	e := &epochState{id: id}
	e.floor.Store(seq)
	r.epoch.Store(e)
	// The caller reports it, saying who acknowledged.
	r.lost.Store(nil)
	return true, nil
}

// holdOver acknowledges the loss this store knows of once it has waited
// StateLossHold since noticing it, and reports whether it did.
func (r *Store) holdOver(ctx context.Context) bool {
	l := r.lost.Load()
	if time.Duration(r.StateLossHold) <= 0 || l == nil || r.clock.Now().Sub(l.Since) < time.Duration(r.StateLossHold) {
		return false
	}
	ok, err := r.AcknowledgeLoss(ctx)
	if err != nil {
		return false
	}
	if ok {
		r.raise(storage.Alarm{Kind: storage.AlarmLossAcknowledged,
			Detail: fmt.Sprintf("acknowledged by the store itself, %s after it noticed the loss (state_loss_hold)", time.Duration(r.StateLossHold))})
	}
	return true
}

// stillLost reports whether the loss this store knows of still waits for
// an acknowledgement, adopting one made through another instance: for the
// calls that run no plan, which would otherwise learn of it only at the
// next plan. It asks the server only while this store knows of a loss.
func (r *Store) stillLost(ctx context.Context) (bool, error) {
	if r.lost.Load() == nil {
		return false, nil
	}
	e := r.epoch.Load()
	vals, err := r.client.HMGet(ctx, r.epochKey(), "id", "lost", "acked", "seq").Result()
	if err != nil {
		return true, redisError("read epoch", err)
	}
	id, _ := vals[0].(string)
	acked, _ := vals[2].(string)
	seq, _ := strconv.ParseInt(fmt.Sprint(vals[3]), 10, 64)
	if e == nil || vals[1] != nil || id == "" || id == e.id || acked != "1" || seq <= e.floor.Load() {
		return true, nil
	}
	n := &epochState{id: id}
	n.floor.Store(seq)
	r.epoch.CompareAndSwap(e, n)
	r.clearLoss("acknowledged through another instance")
	return false, nil
}

// epochReply handles the epoch part of a plan's reply: the seq the plan
// counted and the epoch's state (0 as expected, 1 lost, or the id of an
// acknowledged epoch the plan adopted). It returns recovery.ErrStateLost,
// as unavailability, when the plan was refused for a loss.
func (r *Store) epochReply(ctx context.Context, e *epochState, seqv, state any) error {
	seq, _ := seqv.(int64)
	switch s := state.(type) {
	case int64:
		if s == 1 {
			if r.staleAnswer(ctx, func(m masterEpoch) bool { return m.id == e.id && !m.lost && m.seq >= e.floor.Load() }) {
				return errStale("plan")
			}
			r.noticeLoss("the server's state does not match what this instance saw (restart without data, failover to a replica that lacks it, flush, or restore)")
			return fmt.Errorf("redis plan: %w: %w", recovery.ErrUnavailable, recovery.ErrStateLost)
		}
		e.raise(seq)
	case string:
		n := &epochState{id: s}
		n.floor.Store(seq)
		r.epoch.CompareAndSwap(e, n)
		r.clearLoss("acknowledged through another instance")
	}
	return nil
}
