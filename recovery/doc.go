// Package recovery is the SMS password-recovery flow: starting a flow,
// resending and verifying its one-time code, and handing out and spending
// the reset token that lets a request through to the upstream.
//
// It declares the interfaces it consumes (Store, Sender, Directory, Guard,
// PhonePolicy, Observer, Clock) and knows nothing of HTTP or Caddy: statuses
// are chosen by the caller from the sentinel errors declared here.
//
// It must never store a code or a token in the clear, never compare secrets
// in variable time, and never tell apart an account that exists from one that
// does not, in what it returns or in the work it does.
package recovery
