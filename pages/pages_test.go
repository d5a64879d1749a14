package pages

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

func TestPagesEveryLanguageHasEveryText(t *testing.T) {
	t.Parallel()
	texts, err := loadTexts()
	if err != nil {
		t.Fatal(err)
	}
	if got := slices.Sorted(maps.Keys(texts)); !slices.Equal(got, []string{"de", "en", "fr", "nl"}) {
		t.Fatalf("languages %v, want de, en, fr, nl", got)
	}
	placeholder := regexp.MustCompile(`\{[a-z]+\}`)
	known := []string{"{site}", "{support}", "{digits}", "{minutes}", "{min}", "{attempts}", "{wait}", "{n}", "{reference}", "{account}"}
	for lang, m := range texts {
		t.Run(lang, func(t *testing.T) {
			for key, en := range texts["en"] {
				s, ok := m[key]
				if !ok || strings.TrimSpace(s) == "" {
					t.Errorf("no text for %q", key)
					continue
				}
				if got, want := slices.Sorted(slices.Values(placeholder.FindAllString(s, -1))), slices.Sorted(slices.Values(placeholder.FindAllString(en, -1))); !slices.Equal(got, want) {
					t.Errorf("%s uses %v, English uses %v", key, got, want)
				}
			}
			for key, s := range m {
				if _, ok := texts["en"][key]; !ok {
					t.Errorf("text %q is not in English", key)
				}
				for _, p := range placeholder.FindAllString(s, -1) {
					if !slices.Contains(known, p) {
						t.Errorf("%s uses unknown placeholder %s", key, p)
					}
				}
			}
		})
	}
}

func TestLanguageChoice(t *testing.T) {
	t.Parallel()
	p := &Set{defaultLang: "en", texts: map[string]map[string]string{"en": nil, "de": nil, "nl": nil, "fr": nil}}
	tests := []struct{ header, want string }{
		{"", "en"},
		{"*", "en"},
		{"nl", "nl"},
		{"NL-be", "nl"},
		{"de_AT", "de"},
		{"pt-BR, fr;q=0.4, nl;q=0.6", "nl"},
		{"fr;q=1.0, de", "fr"},
		{"fr;q=0.000", "en"},
		{"fr;q=1.5, de;q=-1", "en"},
		{" de ; q = 0.7 , fr ; q = 0.8 ", "fr"},
		{"xx-fr, de;q=0.1", "de"},
	}
	for _, tt := range tests {
		t.Run(tt.header, func(t *testing.T) {
			t.Parallel()
			if got := p.Language(tt.header); got != tt.want {
				t.Errorf("language(%q) = %q, want %q", tt.header, got, tt.want)
			}
		})
	}
}

func TestWaitText(t *testing.T) {
	t.Parallel()
	texts, err := loadTexts()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		lang string
		secs int64
		want string
	}{
		{"en", 1, "1 second"},
		{"de", 1, "1 Sekunde"},
		{"en", 45, "45 seconds"},
		{"en", 60, "60 seconds"},
		{"en", 61, "2 minutes"},
		{"en", 100, "2 minutes"},
		{"en", 1800, "30 minutes"},
		{"en", 5400, "90 minutes"},
		{"en", 5401, "2 hours"},
		{"en", 86400, "24 hours"},
		{"de", 60 * 60 * 2, "2 Stunden"},
		{"nl", 7200, "2 uur"},
		{"fr", 120, "2 minutes"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.lang, tt.secs), func(t *testing.T) {
			t.Parallel()
			if got := waitText(texts[tt.lang], tt.secs); got != tt.want {
				t.Errorf("waitText(%s, %d) = %q, want %q", tt.lang, tt.secs, got, tt.want)
			}
		})
	}
}

func TestNewRefusesUnknownLanguage(t *testing.T) {
	t.Parallel()
	if _, err := New("pt", ""); err == nil || !strings.Contains(err.Error(), `no page texts for "pt"`) {
		t.Fatalf("New(pt) error %v, want one naming the language", err)
	}
}

func TestTryFindsABrokenTemplate(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	// Parses, but fails when run: the text key does not exist.
	if err := os.WriteFile(filepath.Join(dir, "done.html"), []byte(`{{define "content"}}{{.T "no.such.key"}}{{end}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := New("en", dir)
	if err != nil {
		t.Fatal(err)
	}
	err = s.Try(func(lang string) *View { return s.View(lang) })
	if err == nil || !strings.Contains(err.Error(), "done.html") {
		t.Fatalf("Try error %v, want one naming done.html", err)
	}
}

func TestProblemOf(t *testing.T) {
	t.Parallel()
	for code, want := range map[string]string{"account_locked": "locked", "ip_blocked": "blocked", "too_large": "error", "": "error"} {
		if got := ProblemOf(code); got != want {
			t.Errorf("ProblemOf(%q) = %q, want %q", code, got, want)
		}
		if !slices.Contains(ProblemStates, ProblemOf(code)) {
			t.Errorf("ProblemOf(%q) = %q is no problem state", code, ProblemOf(code))
		}
	}
}

func TestReferenceShown(t *testing.T) {
	t.Parallel()
	s, err := New("en", "")
	if err != nil {
		t.Fatal(err)
	}
	for _, lang := range []string{"en", "de", "nl", "fr"} {
		v := s.View(lang)
		v.Name, v.State, v.Next, v.Reference = "problem", "locked", "/", "K7QMX-2XD9T"
		out, err := s.Render(v)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(out), `<p class="reference">`) || !strings.Contains(string(out), "K7QMX-2XD9T") {
			t.Errorf("%s: the problem page does not show its reference:\n%s", lang, out)
		}
		v = s.View(lang)
		v.Name, v.Next = "account", "/"
		if out, _ := s.Render(v); strings.Contains(string(out), `class="reference"`) {
			t.Errorf("%s: a page without a refusal shows a reference", lang)
		}
	}
	if out, _ := func() ([]byte, error) {
		v := s.View("en")
		v.Name, v.State, v.Next, v.Reference = "problem", "locked", "/", "K7QMX-2XD9T"
		return s.Render(v)
	}(); !strings.Contains(string(out), "Give support this reference: K7QMX-2XD9T") {
		t.Errorf("the English text is not on the page:\n%s", out)
	}
}
