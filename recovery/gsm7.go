package recovery

import (
	"strings"
	"unicode/utf16"
)

// The GSM 03.38 default alphabet (without the escape code) and its extension
// table, as Unicode. An extension character is sent as escape plus itself, so
// it costs two septets.
const (
	gsm7Basic = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?" +
		"¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
	gsm7Extension = "\f^{}\\[~]|€"
)

// Segment sizes: a single SMS holds 140 octets; a part of a concatenated SMS
// loses 6 octets to its user data header.
const (
	gsm7Single = 160 // septets in a single message
	gsm7Multi  = 153 // septets in each part of a concatenated message
	ucs2Single = 70  // UTF-16 code units in a single message
	ucs2Multi  = 67  // UTF-16 code units in each part of a concatenated message
)

// IsGSM7 reports whether s can be sent in the GSM 7-bit default alphabet
// (with its extension table), that is without switching the whole message to
// UCS-2, which cuts a segment from 160 to 70 characters.
func IsGSM7(s string) bool {
	_, ok := Septets(s)
	return ok
}

// Septets returns the length of s in GSM-7 septets, counting characters of
// the extension table (such as € or [) as two. It returns false if s holds a
// character outside the GSM-7 alphabet.
func Septets(s string) (int, bool) {
	n := 0
	for _, r := range s {
		w := gsm7Width(r)
		if w == 0 {
			return 0, false
		}
		n += w
	}
	return n, true
}

// Segments returns how many SMS segments s is sent as: GSM-7 if it can be,
// UCS-2 otherwise. Like a real encoder it never splits an escaped character
// or a UTF-16 surrogate pair across two segments. An empty text is one
// segment.
func Segments(s string) int {
	if n, ok := Septets(s); ok {
		return segments(s, n, gsm7Single, gsm7Multi, gsm7Width)
	}
	units := 0
	for _, r := range s {
		units += utf16.RuneLen(r)
	}
	return segments(s, units, ucs2Single, ucs2Multi, utf16.RuneLen)
}

// segments packs the characters of s, total units long, into parts.
func segments(s string, total, single, multi int, width func(rune) int) int {
	if total <= single {
		return 1
	}
	parts, used := 1, 0
	for _, r := range s {
		w := width(r)
		if used+w > multi {
			parts++
			used = 0
		}
		used += w
	}
	return parts
}

// gsm7Width returns the septets r takes in GSM-7, or 0 if it has none.
func gsm7Width(r rune) int {
	switch {
	case strings.ContainsRune(gsm7Basic, r):
		return 1
	case strings.ContainsRune(gsm7Extension, r):
		return 2
	default:
		return 0
	}
}
