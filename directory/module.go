package directory

import (
	"context"
	"fmt"
	"net/http"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/recovery"
)

// Namespace is the Caddy module namespace of directories. A module in it is
// the directory itself: it implements recovery.Directory, opens what it
// needs in Provision and closes it in Cleanup, and reads its Caddyfile
// segment ("<name> <args...> { ... }", after the word directory) in
// UnmarshalCaddyfile. The gateway loads it from its "directory" field,
// whose "source" names the module: {"source": "file", "path": "phones.json"}
// loads http.handlers.sms_recovery.directories.file.
const Namespace = "http.handlers.sms_recovery.directories"

// Unavailable returns err as the failure of the directory source (file,
// http, ...): an error that matches recovery.ErrUnavailable, so that the
// flow fails closed, and err.
func Unavailable(source string, err error) error {
	return fmt.Errorf("directory %s: %w: %w", source, recovery.ErrUnavailable, err)
}

// RequestSigner signs a request that the directory sends, the way the
// gateway signs the reset it forwards (RFC 9421), so that the service
// asked can tell the gateway from anyone else.
type RequestSigner func(*http.Request) error

// WithRequestSigner returns a copy of ctx that carries sign. The gateway
// loads its directory module through it; a module that sends requests
// finds the signer with RequestSignerFrom in its Provision.
func WithRequestSigner(ctx caddy.Context, sign RequestSigner) caddy.Context { return with(ctx, sign) }

// RequestSignerFrom returns the signer that WithRequestSigner put in ctx,
// or nil.
func RequestSignerFrom(ctx context.Context) RequestSigner { return from[RequestSigner](ctx) }

// PhonePin checks every number of a directory that holds them all (file)
// whenever it loads a version of them, and keeps the answers, as
// PhonePolicy.Survey does. The gateway tells what it found in its log and
// metrics, and returns an error for a version none of whose numbers may get
// a code: the directory then does not load, or keeps the version it has.
type PhonePin func(Load) error

// Load is one version of the entries of a directory that holds them all.
type Load struct {
	Source  string                    // what was read, such as the file's path
	Reload  bool                      // it replaces a version in use
	Entries map[string]recovery.Entry // by account, normalised
}

// WithPhonePin returns a copy of ctx that carries pin. The gateway loads its
// directory module through it; a directory that holds all its numbers
// (file) hands each version to pin before it uses it, and then says so with
// PhonesChecked (recovery.PhonesChecked).
func WithPhonePin(ctx caddy.Context, pin PhonePin) caddy.Context { return with(ctx, pin) }

// PhonePinFrom returns the pin that WithPhonePin put in ctx, or nil.
func PhonePinFrom(ctx context.Context) PhonePin { return from[PhonePin](ctx) }

// WithClock returns a copy of ctx that carries clock, the gateway's: a
// directory that looks at its source again from time to time (file) keeps
// time by it.
func WithClock(ctx caddy.Context, clock recovery.Clock) caddy.Context { return with(ctx, clock) }

// ClockFrom returns the clock that WithClock put in ctx, or nil.
func ClockFrom(ctx context.Context) recovery.Clock { return from[recovery.Clock](ctx) }

// key is the context key of a value of type T.
type key[T any] struct{}

func with[T any](ctx caddy.Context, v T) caddy.Context {
	ctx.Context = context.WithValue(ctx.Context, key[T]{}, v)
	return ctx
}

func from[T any](ctx context.Context) T {
	v, _ := ctx.Value(key[T]{}).(T)
	return v
}
