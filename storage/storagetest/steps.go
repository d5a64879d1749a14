package storagetest

import (
	"context"
	"encoding/hex"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/recovery"
)

// The steps below are one plan each, as small as a change to one record
// can be, so that the suite holds every store to what each kind of change
// promises on its own, through the one path the guard takes.

func run(ctx context.Context, s Store, p recovery.Plan) (recovery.Outcome, error) {
	return s.RunPlan(ctx, &p)
}

// CreateFlow stores f: recovery.ErrFull when the store has no room for it.
func CreateFlow(ctx context.Context, s Store, f recovery.Flow) error {
	o, err := run(ctx, s, recovery.Plan{Op: recovery.OpCreate, Flow: f})
	if err == nil && o.Refused == recovery.StepFull {
		err = recovery.ErrFull
	}
	return err
}

// Attempt counts one attempt on flow id, as a verify does.
func Attempt(ctx context.Context, s Store, id string, maxAttempts int) (recovery.Flow, error) {
	o, err := run(ctx, s, recovery.Plan{Op: recovery.OpAttempt, FlowID: id, MaxAttempts: maxAttempts})
	if err == nil {
		err = o.FlowErr
	}
	return o.Flow, err
}

// Consume consumes flow id, as a right code does, storing no token.
func Consume(ctx context.Context, s Store, id string) (bool, error) {
	o, err := run(ctx, s, recovery.Plan{Op: recovery.OpFinish, FlowID: id})
	return o.Won, err
}

// Resend replaces the code of flow id.
func Resend(ctx context.Context, s Store, id string, hash []byte, r recovery.ResendOp) (recovery.Flow, error) {
	r.ID, r.CodeHash = id, hash
	if r.MaxAttempts == 0 {
		r.MaxAttempts = 1 << 30
	}
	o, err := run(ctx, s, recovery.Plan{Op: recovery.OpResend, FlowID: id, CodeHash: hash, Now: r.Now,
		Interval: r.Interval, ExpiresAt: r.ExpiresAt, MaxAttempts: r.MaxAttempts})
	if err == nil {
		err = o.FlowErr
	}
	return o.Flow, err
}

// PutToken stores t, as the right code of a flow of its own does.
func PutToken(ctx context.Context, s Store, t recovery.Token) error {
	f := recovery.Flow{ID: "token-" + hex.EncodeToString(t.Hash), Account: t.Account, CodeHash: []byte("h"), ExpiresAt: t.ExpiresAt}
	if err := CreateFlow(ctx, s, f); err != nil {
		return err
	}
	_, err := run(ctx, s, recovery.Plan{Op: recovery.OpFinish, FlowID: f.ID, Token: t})
	return err
}

// Strike counts one strike against kind and key under p: a lock in force
// refuses it, and a store with no room for a new record fails with
// recovery.ErrFull.
func Strike(ctx context.Context, s Store, kind, key string, p recovery.Policy) (recovery.Strike, error) {
	o, err := run(ctx, s, recovery.Plan{Strikes: []recovery.StrikeStep{{Kind: kind, Key: key, Policy: p}}})
	switch {
	case err != nil:
		return recovery.Strike{}, err
	case o.Refused == recovery.StepStrike && o.Full:
		return recovery.Strike{}, recovery.ErrFull
	case o.Refused == recovery.StepStrike:
		return recovery.Strike{Refused: true, Lock: o.Lock}, nil
	}
	return o.Strikes[0], nil
}

// Forgive takes one strike back from kind and key.
func Forgive(ctx context.Context, s Store, kind, key string, p recovery.Policy) error {
	_, err := run(ctx, s, recovery.Plan{Ends: []recovery.EndStep{{Kind: kind, Key: key, Forgive: true, Policy: p}}})
	return err
}

// GetLock returns the lock of kind and key in force, as support lists it.
func GetLock(ctx context.Context, s Store, kind, key string) (recovery.Lock, bool, error) {
	locks, err := s.ListLocks(ctx, kind)
	for _, l := range locks {
		if l.Key == key {
			return l, true, err
		}
	}
	return recovery.Lock{}, false, err
}
