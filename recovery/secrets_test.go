package recovery

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"math/big"
	"sync"
	"testing"
)

// hmacOf is the keyed hash of the parts joined, computed afresh.
func hmacOf(secret []byte, parts ...string) []byte {
	m := hmac.New(sha256.New, secret)
	for _, p := range parts {
		m.Write([]byte(p))
	}
	return m.Sum(nil)
}

// TestKeyringHashesAreHMACs checks the reused HMACs against fresh ones,
// under every secret and from many goroutines at once: a reused HMAC that
// kept input from an earlier hash, or was shared between two, differs.
func TestKeyringHashesAreHMACs(t *testing.T) {
	old, cur := bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 40)
	k, err := NewKeyring(cur, old)
	if err != nil {
		t.Fatal(err)
	}
	k = k.InRealm("realm")
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				flow, code := fmt.Sprintf("flow-%d-%d", g, i), fmt.Sprintf("%06d", i)
				want := hmacOf(cur, "sms-recovery code\x00", "realm", "\x00", flow, "\x00", code)
				if got := k.HashCode(flow, code); !bytes.Equal(got, want) {
					t.Errorf("HashCode(%q, %q) = %x, want %x", flow, code, got, want)
					return
				}
				if !k.MatchCode(flow, code, hmacOf(old, "sms-recovery code\x00", "realm", "\x00", flow, "\x00", code)) {
					t.Errorf("MatchCode misses the hash under the older secret")
					return
				}
				if k.MatchCode(flow, code, hmacOf(old, "sms-recovery code\x00", "other", "\x00", flow, "\x00", code)) {
					t.Errorf("MatchCode accepts the hash of another realm")
					return
				}
				hs := k.TokenHashes(flow)
				if !bytes.Equal(hs[0], hmacOf(cur, "sms-recovery token\x00", "realm", "\x00", flow)) ||
					!bytes.Equal(hs[1], hmacOf(old, "sms-recovery token\x00", "realm", "\x00", flow)) {
					t.Errorf("TokenHashes(%q) differ from fresh HMACs", flow)
					return
				}
				if got, want := k.PhoneKey(flow), hex.EncodeToString(hmacOf(cur, "sms-recovery phone\x00", flow)[:16]); got != want {
					t.Errorf("PhoneKey(%q) = %s, want %s", flow, got, want)
					return
				}
				sum := hmacOf(cur, "sms-recovery stand-in\x00", flow)
				n := uint32(sum[0])<<24 | uint32(sum[1])<<16 | uint32(sum[2])<<8 | uint32(sum[3])
				if got, want := k.StandInPhone(flow), fmt.Sprintf("+316%08d", n%100_000_000); got != want {
					t.Errorf("StandInPhone(%q) = %s, want %s", flow, got, want)
					return
				}
				if got, want := k.StandInFromSet(flow), k.StandInPhones()[n%StandIns]; got != want {
					t.Errorf("StandInFromSet(%q) = %s, want %s", flow, got, want)
					return
				}
				tag := base64.RawURLEncoding.EncodeToString(hmacOf(cur, "sms-recovery delivery report\x00", flow)[:16])
				if got := k.ReportTag(flow); got != tag {
					t.Errorf("ReportTag(%q) = %s, want %s", flow, got, tag)
					return
				}
				oldTag := base64.RawURLEncoding.EncodeToString(hmacOf(old, "sms-recovery delivery report\x00", flow)[:16])
				if !k.MatchReportTag(flow, oldTag) || k.MatchReportTag(flow+"x", tag) || k.MatchReportTag(flow, tag[:len(tag)-1]) {
					t.Errorf("MatchReportTag(%q) misses the older secret's tag, or takes another payload's or a short one", flow)
					return
				}
			}
		})
	}
	wg.Wait()
}

// TestRandomCodeIsRandInt checks that randomCode draws what crypto/rand.Int
// draws from the same bytes, rejections included, for every code length.
func TestRandomCodeIsRandInt(t *testing.T) {
	for length := 6; length <= 10; length++ {
		stream := make([]byte, 1<<16)
		if _, err := rand.Read(stream); err != nil {
			t.Fatal(err)
		}
		limit := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(length)), nil)
		want, got := bytes.NewReader(stream), bytes.NewReader(stream)
		for range 2000 {
			n, err := rand.Int(want, limit)
			if err != nil {
				t.Fatal(err)
			}
			code, err := randomCode(got, length)
			if err != nil {
				t.Fatal(err)
			}
			if w := fmt.Sprintf("%0*s", length, n.String()); code != w {
				t.Fatalf("length %d: randomCode = %s, rand.Int gives %s", length, code, w)
			}
			if want.Len() != got.Len() {
				t.Fatalf("length %d: randomCode read %d bytes more than rand.Int", length, want.Len()-got.Len())
			}
		}
	}
	if _, err := randomCode(bytes.NewReader([]byte{1, 2}), 6); err == nil {
		t.Error("randomCode from a short reader: no error")
	}
}

// TestLinkRemembersOnlyItsOwnURL alternates public URLs, a bad one among
// them: each gets its own link, whatever was parsed before it.
func TestLinkRemembersOnlyItsOwnURL(t *testing.T) {
	s := &Service{cfg: Config{PathPrefix: "/recovery/"}}
	for range 3 {
		for _, c := range []struct{ url, link, host string }{
			{"https://mail.example.com", "https://mail.example.com/recovery/?flow=", "mail.example.com"},
			{"http://other.example:8080/base/", "http://other.example:8080/base/recovery/?flow=", "other.example"},
			{"ftp://mail.example.com", "", ""},
		} {
			link, host, err := s.link(c.url)
			if c.link == "" {
				if err == nil {
					t.Errorf("link(%q): no error", c.url)
				}
				continue
			}
			if err != nil || link != c.link || host != c.host {
				t.Errorf("link(%q) = %q, %q, %v; want %q, %q", c.url, link, host, err, c.link, c.host)
			}
		}
	}
}

// TestStandInPhones checks the set stand-in numbers come from: StandIns
// Dutch mobile numbers, each an HMAC of its index under the newest secret,
// the same on every call and for every realm, and another set under
// another secret.
func TestStandInPhones(t *testing.T) {
	t.Parallel()
	cur, old := bytes.Repeat([]byte("c"), MinSecretLen), bytes.Repeat([]byte("o"), MinSecretLen)
	k, err := NewKeyring(cur, old)
	if err != nil {
		t.Fatal(err)
	}
	set := k.StandInPhones()
	if len(set) != StandIns {
		t.Fatalf("%d stand-in numbers, want %d", len(set), StandIns)
	}
	for i, n := range set {
		var idx [8]byte
		idx[7], idx[6] = byte(i), byte(i>>8)
		sum := hmacOf(cur, "sms-recovery stand-in set\x00", string(idx[:]))
		want := fmt.Sprintf("+316%08d", (uint32(sum[0])<<24|uint32(sum[1])<<16|uint32(sum[2])<<8|uint32(sum[3]))%100_000_000)
		if n != want {
			t.Fatalf("stand-in %d = %s, want %s", i, n, want)
		}
	}
	if again := k.InRealm("other").StandInPhones(); &again[0] != &set[0] {
		t.Error("a realm's keyring made a set of its own")
	}
	other, _ := NewKeyring(old)
	if other.StandInPhones()[0] == set[0] && other.StandInPhones()[1] == set[1] {
		t.Error("another secret gives the same stand-in numbers")
	}
}

// TestAccountRef checks the hash that names an account in logs against the
// recipe docs/operations.md gives support, computed with openssl:
//
//	printf 'sms-recovery account log\0%s' alice@example.com |
//	  openssl dgst -sha256 -mac HMAC -macopt hexkey:4242…42 | cut -c1-16
//
// and that it depends on the newest secret alone: not on the realm, nor on
// older secrets, so that every instance sharing the secret agrees.
func TestAccountRef(t *testing.T) {
	t.Parallel()
	secret, other := bytes.Repeat([]byte{0x42}, 32), bytes.Repeat([]byte{0x43}, 32)
	k, err := NewKeyring(secret)
	if err != nil {
		t.Fatal(err)
	}
	const want = "672ca3a83b429e03"
	if got := k.AccountRef("alice@example.com"); got != want {
		t.Errorf("AccountRef = %s, want %s", got, want)
	}
	rotated, err := NewKeyring(secret, other)
	if err != nil {
		t.Fatal(err)
	}
	if got := rotated.InRealm("another upstream").AccountRef("alice@example.com"); got != want {
		t.Errorf("AccountRef in another realm, with an older secret = %s, want %s", got, want)
	}
	newer, err := NewKeyring(other, secret)
	if err != nil {
		t.Fatal(err)
	}
	if got := newer.AccountRef("alice@example.com"); got == want || len(got) != AccountRefLen {
		t.Errorf("AccountRef under a new newest secret = %s: want another of %d digits", got, AccountRefLen)
	}
	if a, b := k.AccountRef("alice@example.com"), k.AccountRef("alicf@example.com"); a == b {
		t.Errorf("two accounts share the hash %s", a)
	}
	// Domain separation: the phone key of the same input is another hash.
	if k.PhoneKey("alice@example.com")[:AccountRefLen] == want {
		t.Error("AccountRef equals PhoneKey of the same input")
	}
}

func BenchmarkAccountRef(b *testing.B) {
	k, err := NewKeyring(bytes.Repeat([]byte{0x42}, 32))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			_ = k.AccountRef("alice@example.com")
		}
	})
}
