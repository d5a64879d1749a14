package verify

import (
	cf "github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/cfparse"
)

// UnmarshalCaddyfile fills m from the tokens of one sms_recovery_verify
// directive. Syntax:
//
//	sms_recovery_verify [<matcher>] {
//	    key_id             <id>
//	    hmac_key           <base64>
//	    ed25519_public_key <path to PEM>
//	    key <key_id> hmac_key|ed25519_public_key <base64 or path>
//	    max_skew           <duration>
//	    nonce_store memory                      # the default: this process
//	    nonce_store redis <url> [{ prefix <p> }]  # shared by instances, kept across restarts
//	    nonce_store <name> ...                  # any module http.handlers.sms_recovery_verify.nonce_stores.<name>
//	    password passwd_file <path> [{ scheme BLF-CRYPT|SHA512-CRYPT|ARGON2ID|SSHA512 }]
//	    password sql postgres|mysql <dsn> { update "UPDATE … = $1 … = $2"; [scheme …; timeout …] }
//	    password ldap <url> { bind_dn …; bind_password …; base_dn …; filter …; mode passwd_modify|replace; … }
//	    password <name> ...                        # any module http.handlers.sms_recovery_verify.writers.<name>
//	    password_field      <name>              # default: password
//	    min_password_length <n>                 # default: 15
//	    password_blocklist  <path>              # one refused password a line
//	}
//
// key_id and one of hmac_key and ed25519_public_key are required; Validate
// checks that when the configuration loads. Each key line, which may repeat,
// adds one more key to accept, for a rotation of the gateway's key.
// nonce_store hands the rest of its line and block to the module it names;
// the redis URL, placeholders expanded, is checked when the configuration
// loads. write hands the rest of its line and block to the password writer
// it names; with it, the handler sets the new password of a verified reset
// and answers it itself.
func (m *Handler) UnmarshalCaddyfile(d *cf.Dispenser) error {
	d.Next() // consume directive name
	if d.NextArg() {
		return d.ArgErr()
	}
	seen := map[string]bool{}
	for d.NextBlock(0) {
		name := d.Val()
		if seen[name] && name != "key" {
			return d.Errf("duplicate subdirective '%s'", name)
		}
		seen[name] = true
		var err error
		switch name {
		case "key":
			err = parseVerifyKey(d, m)
		case "key_id":
			err = cfparse.String(d, &m.KeyID)
		case "hmac_key":
			err = cfparse.Secret(d, "hmac_key", &m.HMACKey)
		case "ed25519_public_key":
			err = cfparse.String(d, &m.Ed25519PublicKey)
		case "max_skew":
			err = cfparse.Duration(d, &m.MaxSkew)
		case "nonce_store":
			m.NonceStoreRaw, err = cfparse.Guest(d, NonceStoreNamespace, "store", "nonce store")
		case "password":
			m.WriterRaw, err = cfparse.Guest(d, WriterNamespace, "writer", "password writer")
		case "password_field":
			err = cfparse.String(d, &m.PasswordField)
		case "min_password_length":
			err = cfparse.Int(d, &m.MinPasswordLength)
		case "password_blocklist":
			err = cfparse.String(d, &m.PasswordBlocklist)
		default:
			return cfparse.Unknown(d, "")
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// parseVerifyKey reads one key line: key <key_id> hmac_key|ed25519_public_key <value>.
func parseVerifyKey(d *cf.Dispenser, m *Handler) error {
	args := d.RemainingArgs()
	if len(args) != 3 {
		// The last argument is a key, which the message must not quote.
		return d.Errf("key: want <key_id> hmac_key|ed25519_public_key <value>, not %d values", len(args))
	}
	k := Key{KeyID: args[0]}
	switch args[1] {
	case "hmac_key":
		k.HMACKey = args[2]
	case "ed25519_public_key":
		k.Ed25519PublicKey = args[2]
	default:
		return d.Errf("key: '%s' must be hmac_key or ed25519_public_key", args[1])
	}
	m.Keys = append(m.Keys, k)
	return nil
}

// Interface guards
var _ cf.Unmarshaler = (*Handler)(nil)
