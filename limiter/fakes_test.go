package limiter_test

import (
	"context"
	"errors"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/recovery"
	"time"
)

// t0 is a whole second, so that window ends in Unix seconds are exact.
var t0 = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

var errDown = errors.New("backend down")

// brokenStore is a recovery.Store whose every call fails.
type brokenStore struct{ recovery.Store }

func (brokenStore) RunPlan(context.Context, *recovery.Plan) (recovery.Outcome, error) {
	return recovery.Outcome{}, errDown
}

func (brokenStore) EndRun(context.Context, string, string) (bool, error) { return false, errDown }

func (brokenStore) ListLocks(context.Context, string) ([]recovery.Lock, error) { return nil, errDown }

func (brokenStore) Impose(context.Context, string, string, time.Duration) (recovery.Lock, bool, error) {
	return recovery.Lock{}, false, errDown
}
