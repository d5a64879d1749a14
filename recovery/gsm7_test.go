package recovery

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestGSM7Tables(t *testing.T) {
	t.Parallel()
	// GSM 03.38: 128 codes in the default alphabet, one of them the escape to
	// the extension table, which has 10 characters in the default language.
	if n := utf8.RuneCountInString(gsm7Basic); n != 127 {
		t.Errorf("basic table has %d characters, want 127", n)
	}
	if n := utf8.RuneCountInString(gsm7Extension); n != 10 {
		t.Errorf("extension table has %d characters, want 10", n)
	}
	seen := map[rune]bool{}
	for _, r := range gsm7Basic + gsm7Extension {
		if seen[r] {
			t.Errorf("%q appears twice", r)
		}
		seen[r] = true
	}
}

func TestSeptets(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   string
		want int
		ok   bool
	}{
		{"empty", "", 0, true},
		{"ascii", "Hello, world!", 13, true},
		{"at and hash", "@mail.example.com #123456", 25, true},
		{"german umlauts", "Gültig für Zurücksetzen ß", 25, true},
		{"french accents in the table", "réinitialisé à", 14, true},
		{"greek capitals", "ΔΦΓΛΩΠΨΣΘΞ", 10, true},
		{"newlines", "a\nb\r\n", 5, true},
		{"euro counts two", "5 €", 4, true},
		{"brackets count two", "[x]{y}", 10, true},
		{"every extension character", gsm7Extension, 20, true},
		{"c cedilla small is not in the table", "ça", 0, false},
		{"e circumflex", "être", 0, false},
		{"backtick", "`", 0, false},
		{"curly apostrophe", "n’est", 0, false},
		{"non-breaking space", "a\u00a0:", 0, false},
		{"emoji", "ok 👍", 0, false},
		{"invalid utf-8", "a\xffb", 0, false},
		{"tab", "a\tb", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, ok := Septets(tt.in)
			if got != tt.want || ok != tt.ok {
				t.Errorf("Septets(%q) = %d, %v; want %d, %v", tt.in, got, ok, tt.want, tt.ok)
			}
			if IsGSM7(tt.in) != tt.ok {
				t.Errorf("IsGSM7(%q) = %v, want %v", tt.in, !tt.ok, tt.ok)
			}
		})
	}
}

func TestSegments(t *testing.T) {
	t.Parallel()
	a := func(n int) string { return strings.Repeat("a", n) }
	c := func(n int) string { return strings.Repeat("ç", n) } // forces UCS-2
	tests := []struct {
		name string
		in   string
		want int
	}{
		{"empty", "", 1},
		{"gsm7 single full", a(160), 1},
		{"gsm7 one over single", a(161), 2},
		{"gsm7 two full parts", a(306), 2},
		{"gsm7 one over two parts", a(307), 3},
		{"gsm7 extension counts two", a(159) + "€", 2},
		{"gsm7 extension fits single", a(158) + "€", 1},
		// 306 septets, but the escaped € cannot straddle parts one and two.
		{"gsm7 escape not split", a(152) + "€" + a(152), 3},
		{"gsm7 escape at part end", a(151) + "€" + a(153), 2},
		{"ucs2 single full", c(70), 1},
		{"ucs2 one over single", c(71), 2},
		{"ucs2 two full parts", c(134), 2},
		{"ucs2 one over two parts", c(135), 3},
		{"ucs2 surrogate pair fits single", c(68) + "😀", 1},
		{"ucs2 surrogate pair over single", c(69) + "😀", 2},
		// 134 code units, but the surrogate pair cannot be split.
		{"ucs2 surrogate pair not split", c(66) + "😀" + c(66), 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := Segments(tt.in); got != tt.want {
				t.Errorf("Segments(%d runes) = %d, want %d", utf8.RuneCountInString(tt.in), got, tt.want)
			}
		})
	}
}

func BenchmarkSegments(b *testing.B) {
	msg := "Example Mail password reset code: 1234567890\nValid for 5 min. Enter it at " +
		"https://mail.example.com/recovery/?flow=AbCdEfGhIjKlMnOpQrStUv\n\n@mail.example.com #1234567890"
	b.ReportAllocs()
	for b.Loop() {
		Segments(msg)
	}
}
