package recovery

import (
	"fmt"
	"strings"
	"testing"
)

// realistic holds values at the long end of what a site sends: a 20-character
// site name, a 10-digit code, a 70-character link and a long support text.
var realistic = MessageData{
	SiteName: "Example Company Mail",
	Code:     "1234567890",
	Minutes:  15,
	Link:     "https://mail.example-company.com/recovery/?flow=Ab3dEf6hIj9lMn2pQr5tUv",
	Host:     "mail.example-company.com",
	Support:  "Call +1 555 0100 or write to help@example-company.com",
}

func TestRealisticValues(t *testing.T) {
	t.Parallel()
	if n := len(realistic.SiteName); n != 20 {
		t.Errorf("site name is %d characters, want 20", n)
	}
	if n := len(realistic.Link); n != 70 {
		t.Errorf("link is %d characters, want 70", n)
	}
}

func TestBuiltinMessages(t *testing.T) {
	t.Parallel()
	m, err := NewMessages(MessageConfig{})
	if err != nil {
		t.Fatal(err)
	}
	for _, lang := range Languages() {
		t.Run(lang+" code", func(t *testing.T) {
			t.Parallel()
			got, err := m.Code(lang, realistic)
			if err != nil {
				t.Fatal(err)
			}
			checkSMS(t, got)
			for _, want := range []string{realistic.SiteName, realistic.Link, " 15 min. "} {
				if !strings.Contains(strings.ToLower(got), strings.ToLower(want)) {
					t.Errorf("message does not contain %q:\n%s", want, got)
				}
			}
			lines := strings.Split(got, "\n")
			if last, want := lines[len(lines)-1], "@mail.example-company.com #1234567890"; last != want {
				t.Errorf("last line = %q, want %q", last, want)
			}
			if lang != DefaultLang {
				en, _ := m.Code(DefaultLang, realistic)
				if got == en {
					t.Errorf("%s message is the English one", lang)
				}
			}
		})
		for _, n := range []struct {
			name   string
			render func(string, MessageData) (string, error)
			word   string // a word the English text has
		}{
			{"notice", m.Notice, "changed"},
			{"lock notice", m.LockNotice, "locked"},
			{"imposed lock notice", m.ImposedNotice, "support has locked"},
		} {
			t.Run(lang+" "+n.name, func(t *testing.T) {
				t.Parallel()
				got, err := n.render(lang, realistic)
				if err != nil {
					t.Fatal(err)
				}
				checkSMS(t, got)
				if !strings.HasSuffix(got, "\n"+realistic.Support) || !strings.HasPrefix(got, realistic.SiteName) {
					t.Errorf("%s does not start with the site name and end with the support line:\n%s", n.name, got)
				}
				if strings.Contains(got, realistic.Code) || strings.Contains(got, realistic.Link) {
					t.Errorf("%s holds the code or the link:\n%s", n.name, got)
				}
				if en, _ := n.render(DefaultLang, realistic); lang != DefaultLang && got == en {
					t.Errorf("%s %s is the English one", lang, n.name)
				} else if lang == DefaultLang && !strings.Contains(got, n.word) {
					t.Errorf("English %s does not say %q:\n%s", n.name, n.word, got)
				}
				bare, err := n.render(lang, MessageData{SiteName: "Example Mail"})
				if err != nil {
					t.Fatal(err)
				}
				if strings.Contains(bare, "\n") || strings.HasSuffix(bare, ":") {
					t.Errorf("%s without support text has a dangling line or colon: %q", n.name, bare)
				}
			})
		}
	}
}

// checkSMS asserts that an SMS is plain GSM-7 within two segments.
func checkSMS(t *testing.T, body string) {
	t.Helper()
	n, ok := Septets(body)
	if !ok {
		t.Errorf("message is not GSM-7:\n%s", body)
	}
	if n > 2*gsm7Multi || Segments(body) > 2 {
		t.Errorf("message is %d septets, %d segments; want at most %d, 2:\n%s", n, Segments(body), 2*gsm7Multi, body)
	}
	t.Logf("%d septets", n)
}

func TestMessageLanguage(t *testing.T) {
	t.Parallel()
	m, err := NewMessages(MessageConfig{DefaultLang: "nl"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		lang string
		want string // a word only that language's code message has
	}{
		{"de", "Zurücksetzen"},
		{"de-CH", "Zurücksetzen"},
		{"DE", "Zurücksetzen"},
		{"fr_BE", "réinitialiser"},
		{" en ", "password"},
		{"nl", "wachtwoord"},
		{"", "wachtwoord"},
		{"es", "wachtwoord"},
		{"zz-garbage", "wachtwoord"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%q", tt.lang), func(t *testing.T) {
			t.Parallel()
			got, err := m.Code(tt.lang, realistic)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(got, tt.want) {
				t.Errorf("Code(%q) does not contain %q:\n%s", tt.lang, tt.want, got)
			}
		})
	}
}

func TestNewMessagesDefaultLang(t *testing.T) {
	t.Parallel()
	tests := []struct {
		lang    string
		wantErr bool
	}{
		{"", false},
		{"en", false},
		{"FR", false},
		{"de-AT", false},
		{"es", true},
		{"english", true},
	}
	for _, tt := range tests {
		t.Run(tt.lang, func(t *testing.T) {
			t.Parallel()
			_, err := NewMessages(MessageConfig{DefaultLang: tt.lang})
			if (err != nil) != tt.wantErr {
				t.Fatalf("NewMessages(DefaultLang %q) error = %v, want error %v", tt.lang, err, tt.wantErr)
			}
			if err != nil && !strings.Contains(err.Error(), fmt.Sprintf("%q", tt.lang)) {
				t.Errorf("error %q does not name the language", err)
			}
		})
	}
}

func TestCodeTemplate(t *testing.T) {
	t.Parallel()
	const tmpl = "{{.SiteName}}: {{.Code}} ({{.Minutes}} min) {{.Link}}\n@{{.Host}} #{{.Code}}\n\n"
	m, err := NewMessages(MessageConfig{CodeTemplate: tmpl})
	if err != nil {
		t.Fatal(err)
	}
	want := "Example Company Mail: 1234567890 (15 min) " + realistic.Link + "\n@mail.example-company.com #1234567890"
	for _, lang := range append(Languages(), "") {
		got, err := m.Code(lang, realistic)
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("Code(%q) = %q, want %q", lang, got, want)
		}
	}
	// The notice stays the built-in one.
	if got, _ := m.Notice("de", realistic); !strings.Contains(got, "Passwort") {
		t.Errorf("notice is not the built-in German one: %q", got)
	}
}

func TestCodeTemplateRefused(t *testing.T) {
	t.Parallel()
	const last = "\n@{{.Host}} #{{.Code}}"
	tests := []struct {
		name string
		tmpl string
		want string // in the error
	}{
		{"parse error", "Code {{.Code" + last, "message_template"},
		{"unclosed if", "{{if .Code}}x" + last, "message_template"},
		{"unknown field", "{{.Passwort}} {{.Code}}" + last, "message_template: line 1, column 3: unknown field .Passwort (known: .SiteName, .Code,"},
		{"unknown field in untaken branch", "{{if false}}{{.Token}}{{end}}" + last, "unknown field .Token"},
		{"unknown field in else", "{{with .Support}}x{{else}}{{.Phone}}{{end}}" + last, "unknown field .Phone"},
		{"unknown field via root variable", "{{$.Phone}}" + last, "unknown field .Phone"},
		{"unknown field in defined template", `{{define "x"}}{{.Account}}{{end}}` + last, "unknown field .Account"},
		{"field of a field", "{{.Code.Digits}}" + last, "unknown field .Code.Digits"},
		{"field of a pipeline", "{{(.Code).Digits}}" + last, "unknown field .Digits"},
		{"non-gsm7 literal", "Ton code ça: {{.Code}}" + last, "message_template: line 1, column 10: character 'ç' (U+00E7) is not in the GSM-7 alphabet"},
		{"non-gsm7 literal later", "Code {{.Code}}\nVoilà, c'est fait ✓" + last, "line 2, column 19: character '✓' (U+2713)"},
		{"non-gsm7 string constant", `{{printf "%s ç" .Code}}` + last, `character 'ç' (U+00E7)`},
		{"curly quote", "Your code’s here" + last, "U+2019"},
		{"no code", "Reset your password at {{.Link}}", "does not use {{.Code}}"},
		{"no origin-bound line", "Your code is {{.Code}}", `last line must be exactly "@{{.Host}} #{{.Code}}"`},
		{"origin-bound line not last", "@{{.Host}} #{{.Code}}\nThanks", "last line must be"},
		{"origin-bound line with wrong host", "{{.Code}}\n@example.com #{{.Code}}", "last line must be"},
		{"fails when run", "{{index .Code 99}}" + last, "rendering message_template message"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m, err := NewMessages(MessageConfig{CodeTemplate: tt.tmpl})
			if err == nil {
				t.Fatalf("NewMessages accepted %q", tt.tmpl)
			}
			if m != nil {
				t.Error("NewMessages returned messages with an error")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
		})
	}
}

func TestCodeRequiresCodeAndHost(t *testing.T) {
	t.Parallel()
	m, err := NewMessages(MessageConfig{})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []MessageData{
		{SiteName: "x", Host: "mail.example.com"},
		{SiteName: "x", Code: "123456"},
	} {
		if _, err := m.Code("en", d); err == nil {
			t.Errorf("Code(%+v) rendered without error", d)
		}
	}
}

func ExampleMessages_Code() {
	m, err := NewMessages(MessageConfig{})
	if err != nil {
		panic(err)
	}
	sms, err := m.Code("en-GB", MessageData{
		SiteName: "Example Mail",
		Code:     "042917",
		Minutes:  5,
		Link:     "https://mail.example.com/recovery/?flow=x7Gq2",
		Host:     "mail.example.com",
	})
	if err != nil {
		panic(err)
	}
	fmt.Println(sms)
	// Output:
	// Example Mail password reset code: 042917
	// Valid for 5 min. Enter it at https://mail.example.com/recovery/?flow=x7Gq2
	// Never share it. If you did not ask for it, ignore this SMS.
	//
	// @mail.example.com #042917
}

func BenchmarkCode(b *testing.B) {
	m, err := NewMessages(MessageConfig{})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := m.Code("de", realistic); err != nil {
				b.Fatal(err)
			}
		}
	})
}
