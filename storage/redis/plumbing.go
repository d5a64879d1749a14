package redisstore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/clock"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/recovery"
)

// redisPingTimeout bounds the ping at provision when dial_timeout is unset.
const redisPingTimeout = 2 * time.Second

// check pings the server so that an operator learns at load time, not at the
// first recovery request, whether the recovery routes will work. A server
// that would forget state is refused (safety.go): the error says why
// and names the option that accepts it. A server that does not answer only
// warns: the rest of the site must load, and Redis may come back; the
// store's first connection then checks the server, refusing one that would
// forget (503) with an alarm. check also reads the deployment's epoch,
// making it on a new deployment (epoch.go), and says when the state
// was found lost.
func (rs *Store) check(ctx context.Context, logger *zap.Logger, timeout time.Duration) error {
	if timeout <= 0 {
		timeout = redisPingTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := rs.Ping(ctx); err != nil {
		if u, ok := errors.AsType[*UnsafeServerError](err); ok {
			return u
		}
		logger.Warn("redis storage does not answer: the recovery routes answer 503 until it does", zap.Error(err))
		return nil
	}
	// The epoch's key is in the deployment's slot: in a Cluster, reading it
	// checks the node that holds the state, which the ping may not have.
	if err := rs.Epoch(ctx); err != nil {
		if u, ok := errors.AsType[*UnsafeServerError](err); ok {
			return u
		}
		logger.Warn("cannot read the redis storage's epoch; the first request tries again", zap.Error(err))
	}
	// The plan scripts are loaded now, so that the first request after a
	// load or a server restart is one round trip (EVALSHA), not two.
	for _, sc := range []*redis.Script{planScript, plansScript} {
		if err := sc.Load(ctx, rs.client).Err(); err != nil {
			logger.Warn("cannot load the redis storage's scripts; the first requests load them", zap.Error(err))
			break
		}
	}
	for _, risk := range rs.guard.risks() {
		logger.Warn("redis storage uses a server that can forget state, as its settings allow", zap.String("risk", risk))
	}
	if l, lost := rs.StateLoss(); lost {
		logger.Error("redis storage lost its state and no operator has acknowledged the loss: the recovery routes answer 503 until one does",
			zap.String("detail", l.Detail))
	}
	// Locks kept under the key layout of earlier versions move, so that an
	// upgrade forgets none.
	if n, err := rs.MigrateLocks(ctx); err != nil {
		logger.Warn("cannot move locks from the earlier redis key layout; a reload tries again", zap.Error(err))
	} else if n > 0 {
		logger.Info("moved locks from the earlier redis key layout", zap.Int("records", n))
	}
	return nil
}

// redisLogInterval is the least time between two go-redis log lines of one
// kind: while Redis is down, every request would log a failed dial.
const redisLogInterval = 10 * time.Second

var redisLogsOnce sync.Once

// routeRedisLogs replaces go-redis's logger, which is global to the process
// and writes plain lines to stderr, with one that writes structured,
// rate-limited lines to Caddy's current default logger. It takes effect
// once per process; lines go to whichever logging config is loaded when
// they are written.
func routeRedisLogs() {
	redisLogsOnce.Do(func() {
		redis.SetLogger(newRedisLogger(func() *zap.Logger {
			return caddy.Log().Named("http.handlers.sms_recovery.redis")
		}, clock.Real{}, redisLogInterval))
	})
}

// redisLogger writes go-redis's log lines as warnings, at most one per
// kind per interval, and counts the lines it held back in the next one of
// the kind. A kind is the format string, which names one place in go-redis,
// so the count of kinds is bounded.
type redisLogger struct {
	logger   func() *zap.Logger
	clock    recovery.Clock
	interval time.Duration

	mu    sync.Mutex
	kinds map[string]*redisLogKind
}

type redisLogKind struct {
	written    time.Time
	suppressed int
}

func newRedisLogger(logger func() *zap.Logger, clock recovery.Clock, interval time.Duration) *redisLogger {
	return &redisLogger{logger: logger, clock: clock, interval: interval, kinds: map[string]*redisLogKind{}}
}

// Printf is go-redis's logging interface. go-redis puts addresses and
// errors in its lines, never a password or a value it stores.
func (l *redisLogger) Printf(_ context.Context, format string, v ...any) {
	now := l.clock.Now()
	l.mu.Lock()
	k, seen := l.kinds[format]
	if seen && now.Sub(k.written) < l.interval {
		k.suppressed++
		l.mu.Unlock()
		return
	}
	suppressed := 0
	if seen {
		suppressed = k.suppressed
	}
	l.kinds[format] = &redisLogKind{written: now}
	l.mu.Unlock()

	fields := []zap.Field{zap.String("detail", strings.TrimPrefix(fmt.Sprintf(format, v...), "redis: "))}
	if suppressed > 0 {
		fields = append(fields, zap.Int("suppressed", suppressed))
	}
	l.logger().Warn("redis client", fields...)
}
