package memory

import "hash/maphash"

// hkey is a 128-bit keyed hash of a table's key: what Store keys its flows,
// clients and rate counters by, so that a record costs the same fixed 16
// bytes whatever the length of the ID, address or account it stands for.
type hkey struct{ a, b uint64 }

// hasher makes hkeys under two random seeds of its own. The seeds are never
// shown, so a client cannot choose keys that collide; two keys of a table
// of a million share a hash with a chance of about one in 10^26.
type hasher struct{ a, b maphash.Seed }

func newHasher() hasher { return hasher{a: maphash.MakeSeed(), b: maphash.MakeSeed()} }

// of returns the hkey of s.
func (h hasher) of(s string) hkey {
	return hkey{maphash.String(h.a, s), maphash.String(h.b, s)}
}

// scoped returns the hkey of key under scope, of(scope+":"+key), without
// making that string: a plan's counter has the hkey of the key that
// Store's ulimiter.Store methods are given for it.
func (h hasher) scoped(scope, key string) hkey {
	var m maphash.Hash
	m.SetSeed(h.a)
	m.WriteString(scope)
	m.WriteByte(':')
	m.WriteString(key)
	a := m.Sum64()
	m.SetSeed(h.b)
	m.WriteString(scope)
	m.WriteByte(':')
	m.WriteString(key)
	return hkey{a, m.Sum64()}
}
