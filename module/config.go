package module

import (
	"github.com/caddyserver/caddy/v2"
)

// Directory says where phone numbers come from. Exactly one of File, URL or
// SQL or LDAP is set.
type Directory struct {
	// File is the path of a JSON object mapping accounts to E.164 phone
	// numbers, or to {"phone": ..., "lang": ...}. It is read again when it
	// changes.
	File string `json:"file,omitempty"`

	// URL is asked GET <url>?account=<account>, signed like the forwarded
	// reset, and answers 200 {"phone": "+E164"} or 404.
	URL string `json:"url,omitempty"`

	// Timeout bounds one lookup through URL. Default: 3s.
	Timeout caddy.Duration `json:"timeout,omitempty"`

	// SQL asks a PostgreSQL or MySQL/MariaDB database (see SQLDirectory).
	SQL *SQLDirectory `json:"sql,omitempty"`

	// LDAP searches an LDAP server, such as the mobile attribute of
	// inetOrgPerson entries.
	LDAP *LDAPDirectory `json:"ldap,omitempty"`
}

// LDAPDirectory finds phone numbers with a subtree search of an LDAP server.
type LDAPDirectory struct {
	// URL is ldap://host[:port] or ldaps://host[:port] (TLS from the first
	// byte, checked against the system's roots). Over ldap:// without
	// start_tls the bind password crosses the network in clear: use either
	// only on a trusted network. Placeholders such as {env.LDAP_URL} are
	// expanded.
	URL string `json:"url,omitempty"`

	// StartTLS upgrades an ldap:// connection to TLS (the StartTLS
	// operation) before binding; a server that refuses it is an outage,
	// never a reason to go on in clear. Not with ldaps://. Default: off.
	StartTLS bool `json:"start_tls,omitempty"`

	// BindDN is the DN each connection binds as, a service account that
	// may read the phone and language attributes and nothing more.
	// Placeholders are expanded. Default: none (anonymous searches).
	BindDN string `json:"bind_dn,omitempty"`

	// BindPassword is BindDN's password, usually {env.LDAP_PASSWORD} so that
	// it is not written into the config. Required with BindDN. It is never
	// logged nor put in an error.
	BindPassword string `json:"bind_password,omitempty"`

	// BaseDN is where the subtree search starts, e.g.
	// ou=people,dc=example,dc=com. Required.
	BaseDN string `json:"base_dn,omitempty"`

	// Filter selects the entry of an account and must contain {account}
	// exactly once, e.g. (mail={account}). The account replaces it escaped
	// per RFC 4515, so that "*" or ")(" in a name is only ever a value.
	// No entry is an unknown account; more than one is an error (503), as
	// the account is ambiguous. Required.
	Filter string `json:"filter,omitempty"`

	// PhoneAttribute holds the phone number. An entry without it is an
	// account without a phone. Default: mobile.
	PhoneAttribute string `json:"phone_attribute,omitempty"`

	// LangAttribute, if set, holds the language of the account's messages,
	// e.g. preferredLanguage (its first language is taken). Default: none.
	LangAttribute string `json:"lang_attribute,omitempty"`

	// Timeout bounds one lookup, connecting and binding included; a server
	// slower than that fails the request closed (503). Default: 3s.
	Timeout caddy.Duration `json:"timeout,omitempty"`

	// PoolSize is how many bound connections are kept for reuse, and the
	// most open at once. Default: 4.
	PoolSize int `json:"pool_size,omitempty"`
}

// SMS says how messages are sent. Exactly one of Outbox or MessageBird is set;
// with neither, messages go to the outbox file "sms-outbox.jsonl" in the
// working directory, which suits development only.
type SMS struct {
	// Outbox is a file that receives one JSON line {"to","body","time"} per
	// message instead of sending it. For development: it holds live codes.
	Outbox string `json:"outbox,omitempty"`

	// MessageBird sends through MessageBird's SMS API.
	MessageBird *MessageBird `json:"messagebird,omitempty"`

	// QueueSize is how many messages may wait for delivery. When the queue is
	// full, new messages are dropped and counted. Default: 1000.
	QueueSize int `json:"queue_size,omitempty"`
}

// MessageBird configures delivery through MessageBird.
type MessageBird struct {
	// AccessKey is the live API key, usually {env.MESSAGEBIRD_ACCESS_KEY}.
	AccessKey string `json:"access_key,omitempty"`

	// Originator is the sender shown on the phone: a number or up to 11
	// letters and digits.
	Originator string `json:"originator,omitempty"`

	// Endpoint is the base URL of the API. Default: https://rest.messagebird.com.
	Endpoint string `json:"endpoint,omitempty"`

	// Timeout bounds one delivery attempt. Default: 10s.
	Timeout caddy.Duration `json:"timeout,omitempty"`
}

// Limit is a number of events allowed in a window.
type Limit struct {
	// Events is how many events the window allows.
	Events int64 `json:"events"`
	// Window is the length of the fixed window.
	Window caddy.Duration `json:"window"`
}

// Threshold locks or blocks for Duration after Failures wrong codes in Window.
type Threshold struct {
	Failures int64          `json:"failures"`
	Window   caddy.Duration `json:"window"`
	Duration caddy.Duration `json:"duration"`
}

// Storage says where flows, tokens, counters and locks live. With neither
// field set, they live in memory.
type Storage struct {
	// Memory keeps state in this process, shared by handlers with the same
	// storage settings and kept across config reloads.
	Memory *MemoryStorage `json:"memory,omitempty"`

	// Redis keeps state in Redis, shared by every Caddy instance that uses
	// the same server and prefix.
	Redis *RedisStorage `json:"redis,omitempty"`
}

// MemoryStorage bounds the in-process store.
type MemoryStorage struct {
	// MaxEntries bounds flows, tokens and security records (locks, blocks
	// and the wrong codes behind them), each kind apart. A full flow table
	// evicts from the client holding the most flows; a full security table
	// refuses new keys (503) rather than forget a lock. Default: 100000.
	MaxEntries int `json:"max_entries,omitempty"`
}

// RedisStorage is a Redis server or cluster.
type RedisStorage struct {
	// URL is redis://, rediss:// (TLS), redis-sentinel:// or redis-cluster://.
	URL string `json:"url"`

	// Prefix starts every key. Default: "smsrec:".
	Prefix string `json:"prefix,omitempty"`

	// DialTimeout bounds connecting. Default: 2s.
	DialTimeout caddy.Duration `json:"dial_timeout,omitempty"`

	// Timeout bounds one command. Default: 1s.
	Timeout caddy.Duration `json:"timeout,omitempty"`

	// PoolSize is the most connections kept per instance. Default: 32.
	PoolSize int `json:"pool_size,omitempty"`
}

// Forward says how the verified reset is passed on.
type Forward struct {
	// Path replaces the request path the upstream receives. Default: unchanged.
	Path string `json:"path,omitempty"`

	// KeyID names the signing key in Signature-Input.
	KeyID string `json:"key_id,omitempty"`

	// HMACKey is the base64 of at least 64 random bytes, for hmac-sha256.
	HMACKey string `json:"hmac_key,omitempty"`

	// Ed25519Key is the path of a PKCS#8 PEM Ed25519 private key.
	Ed25519Key string `json:"ed25519_key,omitempty"`

	// Fields, when set, is the allow-list of body fields (JSON object keys
	// or form fields) a client's reset passes to the upstream; every other
	// field is dropped. Name only what the upstream reads, usually
	// "password", so that an extra field such as "account" or "user" can
	// never reach it: the signature vouches for the whole body. reset_token
	// cannot be named. The pages' own reset always sends just "password".
	// Default: every field but reset_token passes.
	Fields []string `json:"fields,omitempty"`
}
