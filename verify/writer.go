package verify

import (
	"context"
	"errors"
)

// WriterNamespace is the Caddy module namespace of the verifier's password
// writers. The handler loads one from its "password" field, whose "writer"
// names the module: {"writer": "passwd_file", "path": "/etc/dovecot/users"}
// loads http.handlers.sms_recovery_verify.writers.passwd_file. A module of
// this namespace must implement PasswordWriter.
const WriterNamespace = "http.handlers.sms_recovery_verify.writers"

// PasswordWriter sets an account's password in the store a service reads,
// such as a mail server's password file.
type PasswordWriter interface {
	// SetPassword sets account's password, hashed as the writer is
	// configured. It returns an error wrapping ErrUnknownAccount, having
	// written nothing, when the store has no such account.
	SetPassword(ctx context.Context, account, password string) error
}

// ErrUnknownAccount is what a PasswordWriter's error wraps when the store
// has no such account.
var ErrUnknownAccount = errors.New("no such account in the password store")

// ErrPasswordTooLong is what a PasswordWriter's error wraps when the
// password is longer than its hashing scheme takes (bcrypt: 72 bytes).
// The person is told to choose a shorter one; nothing is written.
var ErrPasswordTooLong = errors.New("the new password is longer than the password store takes")
