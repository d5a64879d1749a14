package recovery

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/secure/precis"
	"golang.org/x/text/unicode/norm"
)

// MaxAccountLen is the longest account name accepted, in characters (code
// points), both as typed and once normalised.
const MaxAccountLen = 254

// NormalizeAccount returns the canonical form of an account name: the one
// spelling under which the flow, the limits and locks, every directory and
// the admin API know an account, and the one the upstream is told in
// X-Recovery-Account. Two names are the same account exactly when they
// normalise to the same string. The rule:
//
//  1. The name must be valid UTF-8. White space around it is trimmed
//     (strings.TrimSpace).
//  2. It must be 1 to MaxAccountLen characters long.
//  3. It must hold no control character, no format character (Unicode
//     category Cf, which holds the bidi controls U+200E, U+200F,
//     U+202A–U+202E, U+2066–U+2069 and U+061C, the zero-width characters
//     U+200B–U+200D, U+2060 and U+FEFF, and the soft hyphen U+00AD) and no
//     other default-ignorable code point (U+034F, the Hangul fillers,
//     variation selectors): they hide or reorder what a person sees, so
//     that one name can pass for another.
//  4. It must hold no code point that Unicode declares a mere duplicate of
//     another, one that never appears in NFC text (NFC_Quick_Check=No):
//     U+212A KELVIN SIGN is K, U+2126 OHM SIGN is Ω, U+212B ANGSTROM SIGN
//     is Å. Folding them would make "\u212Aelvin" the account kelvin, which
//     a directory or an upstream that does not normalise would not agree
//     with; nobody types them on purpose, so they are refused.
//  5. It is then enforced with the PRECIS profile UsernameCaseMapped of
//     RFC 8265: fullwidth and halfwidth forms become their ordinary forms
//     (ＡＬＩＣＥ is alice), letters are lower-cased with Unicode's full,
//     language-neutral case mapping (U+0130 İ becomes "i\u0307", not "i",
//     so ALİCE is not alice), the result is put in NFC, and it must be
//     made of the profile's IdentifierClass (letters, digits, printable
//     ASCII; no spaces, no other symbols, no compatibility forms such as
//     ﬁ) and satisfy the Bidi Rule of RFC 5893 (no right-to-left letters
//     beside left-to-right ones).
//  6. The result must be at most MaxAccountLen characters, and
//     normalising it again must give it back unchanged.
//
// A name that breaks the rule is refused with an error that matches
// ErrInvalidRequest. The error may name the code point at fault, never the
// name itself.
func NormalizeAccount(raw string) (string, error) {
	if !utf8.ValidString(raw) {
		return "", accountError("account name is not valid UTF-8")
	}
	a := strings.TrimSpace(raw)
	if a == "" {
		return "", accountError("account name is empty")
	}
	if utf8.RuneCountInString(a) > MaxAccountLen {
		return "", accountError(fmt.Sprintf("account name is longer than %d characters", MaxAccountLen))
	}
	if printableASCII(a) {
		// What the profile makes of printable ASCII, without its
		// allocations: /start runs this for every request.
		return strings.ToLower(a), nil
	}
	for _, r := range a {
		switch {
		case hiddenRune(r):
			return "", accountError(fmt.Sprintf("account name holds %U, an invisible or direction control character", r))
		case r >= utf8.RuneSelf && !norm.NFC.IsNormalString(string(r)):
			return "", accountError(fmt.Sprintf("account name holds %U, which Unicode treats as a duplicate of another character", r))
		}
	}
	out, err := precis.UsernameCaseMapped.String(a)
	if err != nil {
		return "", accountError(fmt.Sprintf("account name is not a user name under RFC 8265 (%v)", err))
	}
	if utf8.RuneCountInString(out) > MaxAccountLen {
		return "", accountError(fmt.Sprintf("account name is longer than %d characters once normalised", MaxAccountLen))
	}
	// RFC 8264 wants enforcement idempotent; a name for which the library
	// is not is refused rather than given two canonical forms.
	if again, err := precis.UsernameCaseMapped.String(out); err != nil || again != out {
		return "", accountError("account name has no stable normal form")
	}
	return out, nil
}

// accountError is why NormalizeAccount refused a name. It matches
// ErrInvalidRequest.
type accountError string

func (e accountError) Error() string { return string(e) }

func (e accountError) Unwrap() error { return ErrInvalidRequest }

// printableASCII reports whether s is made of U+0021..U+007E only, which
// UsernameCaseMapped maps by lower-casing A..Z and nothing else.
func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// hiddenRune reports the code points rule 3 of NormalizeAccount refuses:
// controls, format characters and other default-ignorable code points.
// PRECIS refuses them too, but this list does not depend on its tables.
func hiddenRune(r rune) bool {
	return unicode.IsControl(r) || unicode.In(r,
		unicode.Cf,
		unicode.Bidi_Control,
		unicode.Join_Control,
		unicode.Other_Default_Ignorable_Code_Point,
		unicode.Variation_Selector,
	)
}
