package redisstore

import (
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/recovery"
)

// How the store tells settings the server refuses from a server that is
// down.
//
// A wrong or missing password, an ACL user without the commands or keys
// the store needs, a database the server does not have, and TLS on one
// side only fail every connection alike for as long as the settings stay
// as they are: waiting does not help. So Open reaches the server once
// (probe) and refuses the config with a *MisconfiguredError that says what
// is wrong and what to change. A server that does not answer (a refused or
// timed-out connection, LOADING, a failover) may come back: it only warns,
// and requests fail closed until it does (plumbing.go). At run time the
// same errors (a password changed on the server after the load) fail
// requests closed too, but the error the gateway logs says "configuration
// error" and what to check, not "unavailable" (redisError).

// MisconfiguredError is a server, or a sentinel, that answered but refused
// the store's settings. Problem says what is wrong, in the server's or the
// TLS handshake's own words too (they hold no password); Fix says what to
// change, naming the setting. It matches recovery.ErrUnavailable, so that
// the requests it refuses at run time fail closed (503).
type MisconfiguredError struct {
	Problem string
	Fix     string
	err     error
}

func (e *MisconfiguredError) Error() string { return e.Problem + "; " + e.Fix }

func (e *MisconfiguredError) Unwrap() error { return e.err }

// Is makes the error recovery.ErrUnavailable too.
func (e *MisconfiguredError) Is(target error) bool { return target == recovery.ErrUnavailable }

// misconfiguration is a *MisconfiguredError whose problem quotes err.
func misconfiguration(problem, fix string, err error) *MisconfiguredError {
	return &MisconfiguredError{Problem: problem + " (" + err.Error() + ")", Fix: fix, err: err}
}

// storeACL is what an ACL user needs on the deployment's keys: the
// commands the store sends and its scripts run (storeCommands), and INFO
// and CONFIG GET, which show whether the server keeps its data (safety.go).
const storeACL = "+@read +@write +@scripting -@dangerous +ping +wait +info +config|get"

// settings is what a message about a refusal can say of the store's
// settings. At run time, redisError knows none of them.
type settings struct {
	db     int    // the url's database
	prefix string // the store's prefix
	// sentinel names the sentinel that answered: "" when it was the
	// server.
	sentinel string
}

// misconfigured returns err as a *MisconfiguredError when it is what a
// server gives to settings that are wrong, and nil otherwise.
func misconfigured(err error) *MisconfiguredError {
	var s settings
	if err != nil && strings.Contains(err.Error(), "all sentinels") {
		s.sentinel = "a sentinel" // go-redis's words when none gave the master
	}
	return s.diagnose(err)
}

// diagnose returns err as a *MisconfiguredError when it is a reply or a
// TLS failure that settings explain, and nil otherwise.
func (s settings) diagnose(err error) *MisconfiguredError {
	if err == nil {
		return nil
	}
	who := cmp.Or(s.sentinel, "the server")
	if reply, ok := errors.AsType[redis.Error](err); ok {
		return s.refusal(reply.Error(), err)
	}
	_, unverified := errors.AsType[*tls.CertificateVerificationError](err)
	_, unknownCA := errors.AsType[x509.UnknownAuthorityError](err)
	_, otherName := errors.AsType[x509.HostnameError](err)
	if unverified || unknownCA || otherName {
		return misconfiguration(who+"'s TLS certificate is not trusted",
			"trust its CA on this machine (the system's store, or SSL_CERT_FILE) and name the server in url as its "+
				"certificate does; skip_verify=true in url turns the check off, for a test server only", err)
	}
	if _, ok := errors.AsType[tls.RecordHeaderError](err); ok {
		return notTLS(who, err)
	}
	if op, ok := errors.AsType[*net.OpError](err); ok && op.Op == "remote error" {
		return misconfiguration(who+" ended the TLS handshake",
			"it may want a client certificate, which the store does not send (tls-auth-clients no or optional on "+
				"the server), or a TLS version or cipher this client does not offer", err)
	}
	return nil
}

// refusal is diagnose of a reply, msg.
func (s settings) refusal(msg string, err error) *MisconfiguredError {
	who, credentials := "the server", "the user name and password in url (percent-encoded)"
	if s.sentinel != "" {
		who, credentials = s.sentinel, "sentinel_password in url"
	}
	switch {
	case strings.HasPrefix(msg, "WRONGPASS"), strings.Contains(msg, "invalid password"):
		return misconfiguration(who+" refused the user name or password", "check "+credentials, err)
	case strings.HasPrefix(msg, "NOAUTH") && s.sentinel != "":
		return misconfiguration(who+" requires a password and url gives none", "add sentinel_password=<password> to url", err)
	case strings.HasPrefix(msg, "NOAUTH"):
		return misconfiguration(who+" requires a password and url gives none",
			"add it to url: redis://:<password>@host:port, or redis://<user>:<password>@host:port for an ACL user", err)
	case (strings.HasPrefix(msg, "NOPERM") || strings.Contains(msg, "can't run this command")) && s.sentinel != "":
		return misconfiguration(who+"'s ACL refuses its default user a command the store needs",
			"allow that user the SENTINEL, SUBSCRIBE and PING commands", err)
	case strings.HasPrefix(msg, "NOPERM"), strings.Contains(msg, "can't run this command"):
		return misconfiguration(who+"'s ACL refuses url's user a command or key the store needs", s.grant(nil), err)
	case strings.Contains(msg, "DB index is out of range"), strings.Contains(msg, "invalid DB index"):
		number := "of url's number"
		if s.db > 0 {
			number = fmt.Sprint(s.db)
		}
		return misconfiguration(who+" has no database "+number,
			"use one it has in url's path (from 0 to its databases setting, 16 by default, less one): redis://host:port/0", err)
	case strings.Contains(msg, "SELECT is not allowed in cluster mode"):
		return misconfiguration(who+" is a Redis Cluster node, which has only database 0",
			"use redis-cluster://host:port,host:port in url", err)
	case strings.Contains(msg, "cluster support disabled"):
		return misconfiguration(who+" is not part of a Redis Cluster", "use redis://host:port in url", err)
	}
	return nil
}

// grant is the fix of an ACL refusal: an ACL SETUSER that gives url's
// user the refused commands, or all the store needs, on the keys under
// the prefix.
func (s settings) grant(refused []string) string {
	perms := storeACL
	if len(refused) > 0 {
		perms = "+" + strings.Join(refused, " +")
	}
	prefix := cmp.Or(s.prefix, "<prefix>")
	return fmt.Sprintf("grant url's user the commands the store runs on the keys under its prefix %q: "+
		"ACL SETUSER <user> ~%s* %s", prefix, prefix, perms)
}

func notTLS(who string, err error) *MisconfiguredError {
	return misconfiguration(who+" does not speak TLS", "use redis:// in url, or turn TLS on at the server (tls-port)", err)
}

//go:embed lua/probe.lua
var probeLua string

// probeScript asks the server's ACL about the store's commands
// (lua/probe.lua).
var probeScript = redis.NewScript(probeLua)

// probe reaches the server once, as requests will, and returns a
// *MisconfiguredError when it refuses the store's settings: credentials,
// ACL, database or TLS; with a Sentinel, the sentinels are asked first. It
// returns nil when the server accepts them, and when it does not answer,
// which check reports.
func (s *Store) probe(ctx context.Context) error {
	opts, err := s.options()
	if err != nil {
		return err
	}
	wait := opts.DialTimeout + opts.ReadTimeout
	if opts.MasterName != "" {
		if err := askSentinels(ctx, opts, wait); err != nil {
			return err
		}
	}
	set := settings{db: opts.DB, prefix: s.Prefix}
	key := s.base + "probe"
	var args []any
	for _, c := range storeCommands(key, s.minReplicas) {
		args = append(args, len(c))
		for _, w := range c {
			args = append(args, w)
		}
	}
	pctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	refused, err := probeScript.Run(pctx, s.client, []string{key}, args...).StringSlice()
	switch {
	case err == nil && len(refused) > 0:
		return &MisconfiguredError{Problem: "the server's ACL refuses url's user commands the store runs: " +
			strings.Join(refused, ", "), Fix: set.grant(refused)}
	case err == nil:
		return nil
	}
	if m := set.diagnose(err); m != nil {
		return m
	}
	if opts.MasterName == "" && !opts.IsClusterMode {
		return otherProtocol(ctx, opts, err)
	}
	return nil
}

// storeCommands are the commands the store sends and those its scripts
// run, each with words enough to be checked on key.
func storeCommands(key string, minReplicas int) [][]string {
	cmds := [][]string{
		{"ping"},
		{"evalsha", planScript.Hash(), "1", key},
		{"eval", "return 1", "1", key},
		{"hmget", key, "f"},
		{"zrangebyscore", key, "0", "1"},
		// Run by the scripts of lua/.
		{"del", key}, {"exists", key}, {"get", key}, {"hget", key, "f"}, {"hincrby", key, "f", "1"},
		{"hset", key, "f", "v"}, {"incrby", key, "1"}, {"persist", key}, {"pexpire", key, "1"}, {"pttl", key},
		{"zadd", key, "1", "m"}, {"zrem", key, "m"}, {"zremrangebyscore", key, "0", "1"},
		// Support's trails (trail.go, lua/trail.lua).
		{"lrange", key, "0", "-1"}, {"rpush", key, "v"}, {"ltrim", key, "0", "1"}, {"zcard", key}, {"zpopmin", key, "1"},
	}
	if minReplicas > 0 {
		cmds = append(cmds, []string{"wait", "1", "0"})
	}
	return cmds
}

// askSentinels asks each sentinel of opts for the master, as the client
// will, and returns a *MisconfiguredError when one refuses the sentinel
// password, or when those that answer know no master of that name. It
// returns nil once one names the master, or when none answers.
func askSentinels(ctx context.Context, opts *redis.UniversalOptions, wait time.Duration) error {
	unknown := ""
	for _, addr := range opts.Addrs {
		c := redis.NewSentinelClient(&redis.Options{Addr: addr, Username: opts.SentinelUsername, Password: opts.SentinelPassword,
			TLSConfig: opts.TLSConfig, DialTimeout: opts.DialTimeout, ReadTimeout: opts.ReadTimeout,
			WriteTimeout: opts.WriteTimeout, MaxRetries: -1})
		sctx, cancel := context.WithTimeout(ctx, wait)
		err := c.GetMasterAddrByName(sctx, opts.MasterName).Err()
		cancel()
		c.Close()
		switch {
		case err == nil:
			return nil
		case errors.Is(err, redis.Nil):
			unknown = addr
		default:
			if m := (settings{sentinel: "the sentinel at " + addr}).diagnose(err); m != nil {
				return m
			}
		}
	}
	if unknown != "" {
		return &MisconfiguredError{Problem: fmt.Sprintf("the sentinel at %s knows no master named %q", unknown, opts.MasterName),
			Fix: "check master in url (SENTINEL MASTERS lists the names it knows)"}
	}
	return nil
}

// otherProtocol tells, after err, a failure that a server of the other
// kind gives (a TLS handshake that a plain server leaves unanswered, a
// connection that a TLS server cuts at the first command), whether the
// server speaks the other protocol, through a second connection that
// sends no credentials: a PING without TLS, or a TLS handshake alone.
func otherProtocol(ctx context.Context, opts *redis.UniversalOptions, err error) error {
	if !cutOff(err) {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, opts.DialTimeout)
	defer cancel()
	var d net.Dialer
	conn, derr := d.DialContext(ctx, "tcp", opts.Addrs[0])
	if derr != nil {
		return nil
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	if opts.TLSConfig != nil {
		if speaksRESP(conn) {
			return notTLS("the server", err)
		}
		return nil
	}
	// The handshake only tells whether the server speaks TLS: nothing is
	// sent over it, so its certificate does not matter.
	hs := tls.Client(conn, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // nothing is sent
	herr := hs.HandshakeContext(ctx)
	if op, ok := errors.AsType[*net.OpError](herr); herr == nil || ok && op.Op == "remote error" {
		return misconfiguration("the server speaks only TLS", "use rediss:// in url", err)
	}
	return nil
}

// speaksRESP reports whether the server at the other end of conn answers
// a PING sent without TLS, with PONG or an error such as NOAUTH.
func speaksRESP(conn net.Conn) bool {
	if _, err := io.WriteString(conn, "PING\r\n"); err != nil {
		return false
	}
	b := make([]byte, 1)
	if _, err := io.ReadFull(conn, b); err != nil {
		return false
	}
	return b[0] == '+' || b[0] == '-'
}

// cutOff reports whether err is a connection that was made and then cut,
// or left unanswered; not one that could not be made.
func cutOff(err error) bool {
	if op, ok := errors.AsType[*net.OpError](err); ok && op.Op == "dial" {
		return false
	}
	if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
		return true
	}
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, context.DeadlineExceeded)
}
