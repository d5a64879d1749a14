package limiter_test

import (
	"context"
	"errors"
	ulimiter "github.com/ulule/limiter/v3"
	"time"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/limiter"
)

// t0 is a whole second, so that window ends in Unix seconds are exact.
var t0 = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

var errDown = errors.New("backend down")

// brokenStore is a PlanStore whose every call fails.
type brokenStore struct{ ulimiter.Store }

func (brokenStore) RunPlan(context.Context, *limiter.Plan) (limiter.Outcome, error) {
	return limiter.Outcome{}, errDown
}

func (brokenStore) EndRun(context.Context, string, string) (bool, error) { return false, errDown }

func (brokenStore) ListLocks(context.Context, string) ([]limiter.Lock, error) { return nil, errDown }

func (brokenStore) Impose(context.Context, string, string, time.Duration) (limiter.Lock, bool, error) {
	return limiter.Lock{}, false, errDown
}
