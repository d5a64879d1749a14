package recovery_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/secure/precis"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/limiter"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/recovery"
)

func TestNormalizeAccountAccepts(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in, want string
	}{
		{"plain", "alice@example.com", "alice@example.com"},
		{"mixed case", "Alice@Example.COM", "alice@example.com"},
		{"white space around", " \talice@example.com\r\n ", "alice@example.com"},
		{"no-break space around", "\u00a0alice@example.com\u3000", "alice@example.com"},
		{"plus tag", "bob+tag@example.com", "bob+tag@example.com"},
		{"apostrophe", "o'brien@example.com", "o'brien@example.com"},
		{"dots and subdomains", "User.Name@Sub.Example.co.uk", "user.name@sub.example.co.uk"},
		{"plain user name", "jdoe", "jdoe"},
		{"unicode local part", "jürgen@example.de", "jürgen@example.de"},
		{"unicode upper case", "JÜRGEN@example.de", "jürgen@example.de"},
		{"decomposed umlaut composes (NFC)", "ju\u0308rgen@example.de", "jürgen@example.de"},
		{"unicode domain", "user@例え.jp", "user@例え.jp"},
		{"greek", "ΣΑΣ@example.gr", "σασ@example.gr"},
		{"sharp s is not ss", "straße@example.de", "straße@example.de"},
		{"dotless i stays dotless", "ılker@example.com", "ılker@example.com"},
		// RFC 8265 maps fullwidth forms to their ordinary ones: people on
		// East Asian keyboards type them, and they mean the same account.
		{"fullwidth letters fold to ASCII", "ａｌｉｃｅ@example.com", "alice@example.com"},
		{"fullwidth upper case", "ＡＬＩＣＥ＠example.com", "alice@example.com"},
		// Full case mapping keeps the dot of U+0130: a different account
		// from alice, where strings.ToLower made it alice.
		{"capital I with dot is not i", "ALİCE@example.com", "ali\u0307ce@example.com"},
		{"254 characters", strings.Repeat("a", 242) + "@example.com", strings.Repeat("a", 242) + "@example.com"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := recovery.NormalizeAccount(tt.in)
			if err != nil || got != tt.want {
				t.Fatalf("NormalizeAccount(%+q) = %+q, %v; want %+q", tt.in, got, err, tt.want)
			}
			if again, err := recovery.NormalizeAccount(got); err != nil || again != got {
				t.Errorf("NormalizeAccount(%+q) = %+q, %v; not stable", got, again, err)
			}
		})
	}
}

// refusedAccounts are names that must answer 400 and change nothing: each
// either hides characters, reorders what is shown, or is a look-alike that
// a simpler case fold would have turned into another account.
var refusedAccounts = []struct {
	name, in string
}{
	{"empty", ""},
	{"only white space", " \t\u00a0 "},
	{"255 characters", strings.Repeat("a", 243) + "@example.com"},
	{"longer than 254 once lower-cased", strings.Repeat("İ", 200)},
	{"invalid UTF-8", "al\xffice@example.com"},
	{"NUL", "a\x00b@example.com"},
	{"DEL", "alice\x7f@example.com"},
	{"C1 control", "alice\u0085x@example.com"},
	{"LEFT-TO-RIGHT MARK", "alice\u200e@example.com"},
	{"RIGHT-TO-LEFT MARK", "alice\u200f@example.com"},
	{"LEFT-TO-RIGHT EMBEDDING", "\u202aalice@example.com"},
	{"RIGHT-TO-LEFT EMBEDDING", "\u202balice@example.com"},
	{"POP DIRECTIONAL FORMATTING", "alice@example.com\u202c"},
	{"LEFT-TO-RIGHT OVERRIDE", "\u202dalice@example.com"},
	{"RIGHT-TO-LEFT OVERRIDE", "\u202ealice@example.com"},
	{"LEFT-TO-RIGHT ISOLATE", "\u2066alice@example.com"},
	{"RIGHT-TO-LEFT ISOLATE", "\u2067alice@example.com"},
	{"FIRST STRONG ISOLATE", "\u2068alice@example.com"},
	{"POP DIRECTIONAL ISOLATE", "alice@example.com\u2069"},
	{"ARABIC LETTER MARK", "alice\u061c@example.com"},
	{"ZERO WIDTH SPACE", "al\u200bice@example.com"},
	{"ZERO WIDTH NON-JOINER", "al\u200cice@example.com"},
	{"ZERO WIDTH JOINER", "al\u200dice@example.com"},
	{"WORD JOINER", "al\u2060ice@example.com"},
	{"ZERO WIDTH NO-BREAK SPACE (BOM)", "\ufeffalice@example.com"},
	{"SOFT HYPHEN", "al\u00adice@example.com"},
	{"COMBINING GRAPHEME JOINER", "al\u034fice@example.com"},
	{"MONGOLIAN VOWEL SEPARATOR", "al\u180eice@example.com"},
	{"VARIATION SELECTOR-16", "al\ufe0fice@example.com"},
	{"TAG LATIN CAPITAL LETTER A", "alice\U000e0041@example.com"},
	{"HANGUL FILLER", "al\u3164ice@example.com"},
	{"KELVIN SIGN", "\u212aelvin@example.com"},
	{"OHM SIGN", "\u2126mega@example.com"},
	{"ANGSTROM SIGN", "\u212bngstrom@example.com"},
	{"space inside", "alice smith@example.com"},
	{"no-break space inside", "alice\u00a0smith@example.com"},
	{"ligature fi", "\ufb01nn@example.com"},
	{"right-to-left letters beside left-to-right ones", "\u0645\u0631\u062d\u0628\u0627@example.com"},
}

func TestNormalizeAccountRefuses(t *testing.T) {
	t.Parallel()
	for _, tt := range refusedAccounts {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := recovery.NormalizeAccount(tt.in)
			if !errors.Is(err, recovery.ErrInvalidRequest) {
				t.Fatalf("NormalizeAccount(%+q) = %+q, %v; want ErrInvalidRequest", tt.in, got, err)
			}
			if got != "" {
				t.Errorf("NormalizeAccount(%+q) returned %+q with its error", tt.in, got)
			}
			// The reason may name a code point but never quotes the name.
			if name, msg := strings.TrimSpace(tt.in), err.Error(); name != "" && strings.Contains(msg, name) {
				t.Errorf("error %q quotes the name", msg)
			}
		})
	}
}

// TestLookalikesAreNotOtherAccounts: no name folds onto the ASCII account
// it imitates.
func TestLookalikesAreNotOtherAccounts(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ lookalike, target string }{
		{"ALİCE@example.com", "alice@example.com"},
		{"\u212aelvin@example.com", "kelvin@example.com"},
		{"al\u200bice@example.com", "alice@example.com"},
		{"\u202ealice@example.com", "alice@example.com"},
		{"alice@example.com\u200d", "alice@example.com"},
	} {
		if got, err := recovery.NormalizeAccount(tt.lookalike); err == nil && got == tt.target {
			t.Errorf("NormalizeAccount(%+q) = %q, the account it imitates", tt.lookalike, got)
		}
	}
}

// TestRefusedAccountsChangeNothing: a refused name is turned away before
// the abuse layer, the directory or the store hears of it, so it spends no
// limit and starts no flow.
func TestRefusedAccountsChangeNothing(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(_ *recovery.Config, l *limiter.Config) {
		l.StartIP = limiter.Rate{Events: 2, Window: time.Hour}
	})
	ctx := context.Background()
	for _, tt := range refusedAccounts {
		_, err := f.svc.Start(ctx, recovery.StartRequest{Account: tt.in, ClientIP: ip, PublicURL: publicURL})
		if !errors.Is(err, recovery.ErrInvalidRequest) {
			t.Errorf("Start(%s) = %v, want ErrInvalidRequest", tt.name, err)
		}
	}
	if n := f.dir.lookups.Load(); n != 0 {
		t.Errorf("refused names caused %d directory lookups, want 0", n)
	}
	// The client's whole start_ip budget of 2 is left.
	f.start(t, alice)
	f.start(t, "carol@example.com")
	var d *recovery.Denial
	_, err := f.svc.Start(ctx, recovery.StartRequest{Account: "dave@example.com", ClientIP: ip, PublicURL: publicURL})
	if !errors.As(err, &d) || d.Scope != "start_ip" {
		t.Fatalf("third start = %v, want the start_ip limit", err)
	}
	if n := len(f.sent.all()); n != 1 {
		t.Errorf("%d SMS sent, want 1 (alice's)", n)
	}
}

// isHidden reports runes that must never be in a normalised account:
// controls, format characters (bidi controls, zero-width characters) and
// other default-ignorable code points.
func isHidden(r rune) bool {
	return unicode.IsControl(r) || unicode.Is(unicode.Cf, r) ||
		unicode.Is(unicode.Bidi_Control, r) || unicode.Is(unicode.Join_Control, r) ||
		unicode.Is(unicode.Other_Default_Ignorable_Code_Point, r) ||
		unicode.Is(unicode.Variation_Selector, r)
}

func FuzzNormalizeAccount(f *testing.F) {
	for _, s := range []string{
		"alice@example.com", "Alice@Example.COM", " ALICE@Example.com ", "ALİCE@example.com",
		"\u212aelvin@example.com", "ａｌｉｃｅ@example.com", "ju\u0308rgen@example.de", "ΣΑΣ@example.gr",
		"o'brien@example.com", "bob+tag@example.com", "İ", "ǅ", "\u0345", "\u1e9e",
	} {
		f.Add(s)
	}
	for _, tt := range refusedAccounts {
		f.Add(tt.in)
	}
	f.Fuzz(func(t *testing.T, in string) {
		out, err := recovery.NormalizeAccount(in)
		if err != nil {
			if !errors.Is(err, recovery.ErrInvalidRequest) {
				t.Fatalf("NormalizeAccount(%+q): %v, not ErrInvalidRequest", in, err)
			}
			if out != "" {
				t.Fatalf("NormalizeAccount(%+q) returned %+q with its error", in, out)
			}
		} else {
			switch {
			case out == "" || !utf8.ValidString(out) || utf8.RuneCountInString(out) > recovery.MaxAccountLen:
				t.Fatalf("NormalizeAccount(%+q) = %+q: empty, invalid or too long", in, out)
			case strings.TrimSpace(out) != out:
				t.Fatalf("NormalizeAccount(%+q) = %+q: white space around it", in, out)
			case strings.ContainsFunc(out, isHidden):
				t.Fatalf("NormalizeAccount(%+q) = %+q: holds a hidden character", in, out)
			}
			// The rule's own refusals only narrow RFC 8265; what passes is
			// what the profile makes of it, by the fast path or the slow.
			if want, perr := precis.UsernameCaseMapped.String(strings.TrimSpace(in)); perr != nil || out != want {
				t.Fatalf("NormalizeAccount(%+q) = %+q; UsernameCaseMapped gives %+q, %v", in, out, want, perr)
			}
			again, err := recovery.NormalizeAccount(out)
			if err != nil || again != out {
				t.Fatalf("NormalizeAccount(NormalizeAccount(%+q)) = %+q, %v; want %+q", in, again, err, out)
			}
		}
		// White space around a name changes nothing.
		padded, perr := recovery.NormalizeAccount(" \t" + in + "\n")
		if padded != out || (perr == nil) != (err == nil) {
			t.Fatalf("padded %+q gives %+q, %v; unpadded %+q, %v", in, padded, perr, out, err)
		}
	})
}

// TestNormalizeAccountASCII: every printable ASCII character, alone and
// beside others, is kept and lower-cased exactly as UsernameCaseMapped
// does, which the fast path for ASCII names relies on.
func TestNormalizeAccountASCII(t *testing.T) {
	t.Parallel()
	for c := rune(0x21); c <= 0x7e; c++ {
		for _, in := range []string{string(c), "a" + string(c) + "B", "1" + string(c), string(c) + "Z"} {
			want, err := precis.UsernameCaseMapped.String(in)
			if err != nil {
				t.Fatalf("UsernameCaseMapped refuses %q: %v", in, err)
			}
			if got, err := recovery.NormalizeAccount(in); err != nil || got != want {
				t.Errorf("NormalizeAccount(%q) = %q, %v; want %q", in, got, err, want)
			}
		}
	}
}

func ExampleNormalizeAccount() {
	for _, in := range []string{" Alice@Example.COM ", "ALİCE@example.com", "al\u200bice@example.com"} {
		out, err := recovery.NormalizeAccount(in)
		fmt.Printf("%+q %v\n", out, err)
	}
	// Output:
	// "alice@example.com" <nil>
	// "ali\u0307ce@example.com" <nil>
	// "" account name holds U+200B, an invisible or direction control character
}
