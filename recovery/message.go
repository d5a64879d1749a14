package recovery

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"text/template"
	"text/template/parse"
	"unicode/utf8"
)

// MessageData is what a message template can use. A template names these
// fields as {{.SiteName}}, {{.Code}} and so on; any other field is refused
// when the template is loaded.
type MessageData struct {
	// SiteName is the site_name option.
	SiteName string
	// Code is the one-time code; it is empty in a notice.
	Code string
	// Minutes is how long the code is valid, in whole minutes.
	Minutes int
	// Link is the page where the code is entered:
	// <public_url><path_prefix>/?flow=<id>.
	Link string
	// Host is the host of public_url, for the origin-bound last line
	// "@<host> #<code>".
	Host string
	// Support is the support option: how to reach a person.
	Support string
}

// DefaultLang is the language of the messages when nothing else is chosen.
const DefaultLang = "en"

// builtinTexts holds the default messages by language (BCP 47 primary
// subtag). Each is plain GSM-7 and, with a 20-character site name, a 10-digit
// code and a 70-character link, fits in two SMS segments; the tests hold them
// to that. Support goes on a line of its own so that a long text stays
// readable and an empty one leaves no dangling colon.
var builtinTexts = map[string]struct{ code, notice, lock, imposed string }{
	"en": {
		code: `{{.SiteName}} password reset code: {{.Code}}
Valid for {{.Minutes}} min. Enter it at {{.Link}}
Never share it. If you did not ask for it, ignore this SMS.

@{{.Host}} #{{.Code}}`,
		notice: `{{.SiteName}}: your password was just changed. If this was not you, contact support now.{{with .Support}}
{{.}}{{end}}`,
		lock: `{{.SiteName}}: password recovery for your account is locked after too many wrong codes. If this was not you, someone may be trying to get in.{{with .Support}}
{{.}}{{end}}`,
		imposed: `{{.SiteName}}: support has locked password recovery for your account. If you did not ask for this, contact support.{{with .Support}}
{{.}}{{end}}`,
	},
	"de": {
		code: `Ihr {{.SiteName}} Code zum Zurücksetzen des Passworts: {{.Code}}
Gültig für {{.Minutes}} Min. Eingabe unter {{.Link}}
Code nie weitergeben. Nicht angefordert? Dann diese SMS ignorieren.

@{{.Host}} #{{.Code}}`,
		notice: `{{.SiteName}}: Ihr Passwort wurde soeben geändert. Waren Sie das nicht, wenden Sie sich sofort an den Support.{{with .Support}}
{{.}}{{end}}`,
		lock: `{{.SiteName}}: Die Passwort-Wiederherstellung Ihres Kontos ist nach zu vielen falschen Codes gesperrt. Waren Sie das nicht, versucht jemand einzudringen.{{with .Support}}
{{.}}{{end}}`,
		imposed: `{{.SiteName}}: Der Support hat die Passwort-Wiederherstellung Ihres Kontos gesperrt. Haben Sie das nicht veranlasst, wenden Sie sich an den Support.{{with .Support}}
{{.}}{{end}}`,
	},
	"nl": {
		code: `Uw {{.SiteName}} code om uw wachtwoord te herstellen: {{.Code}}
Geldig: {{.Minutes}} min. Voer hem in op {{.Link}}
Deel deze code nooit. Niet aangevraagd? Negeer dan dit bericht.

@{{.Host}} #{{.Code}}`,
		notice: `{{.SiteName}}: uw wachtwoord is zojuist gewijzigd. Was u dit niet, neem dan direct contact op met support.{{with .Support}}
{{.}}{{end}}`,
		lock: `{{.SiteName}}: wachtwoordherstel voor uw account is geblokkeerd na te veel foute codes. Was u dit niet, dan probeert iemand binnen te komen.{{with .Support}}
{{.}}{{end}}`,
		imposed: `{{.SiteName}}: support heeft wachtwoordherstel voor uw account geblokkeerd. Heeft u hier niet om gevraagd, neem dan contact op met support.{{with .Support}}
{{.}}{{end}}`,
	},
	"fr": {
		code: `Votre code {{.SiteName}} pour réinitialiser votre mot de passe : {{.Code}}
Valable {{.Minutes}} min. Saisissez-le sur {{.Link}}
Ne le partagez jamais. Pas demandé ? Ignorez ce SMS.

@{{.Host}} #{{.Code}}`,
		notice: `{{.SiteName}} : votre mot de passe a été modifié. Si ce n'était pas vous, contactez immédiatement le support.{{with .Support}}
{{.}}{{end}}`,
		lock: `{{.SiteName}} : la récupération du mot de passe de votre compte est bloquée après trop de codes erronés. Si ce n'était pas vous, quelqu'un tente d'y accéder.{{with .Support}}
{{.}}{{end}}`,
		imposed: `{{.SiteName}} : le support a bloqué la récupération du mot de passe de votre compte. Si vous ne l'avez pas demandé, contactez le support.{{with .Support}}
{{.}}{{end}}`,
	},
}

// MessageConfig chooses the texts of the SMS.
type MessageConfig struct {
	// DefaultLang is the language used for an account without one, or with
	// one that has no built-in texts: "en", "de", "nl" or "fr".
	// Default: "en".
	DefaultLang string
	// CodeTemplate, when set, replaces the built-in code message in every
	// language. It is a Go text/template over MessageData. It must use
	// {{.Code}}, hold only GSM-7 literal text, and end with the line
	// "@{{.Host}} #{{.Code}}" so that phones can offer to fill the code in.
	// Trailing blank space is trimmed from what it renders.
	CodeTemplate string
}

// Messages renders the texts of the SMS the flow sends. It is safe for
// concurrent use.
type Messages struct {
	defaultLang string
	custom      *template.Template // the operator's code message, if any
	builtin     map[string]messageSet
}

// messageSet is the parsed messages of one language.
type messageSet struct{ code, notice, lock, imposed *template.Template }

// NewMessages parses the built-in texts and the operator's template, if any.
// A template that does not parse, names an unknown field, has literal text
// outside GSM-7, does not use the code or does not end with the origin-bound
// line is refused with an error saying why and where.
func NewMessages(cfg MessageConfig) (*Messages, error) {
	m := &Messages{
		defaultLang: primaryLang(cmp.Or(cfg.DefaultLang, DefaultLang)),
		builtin:     make(map[string]messageSet, len(builtinTexts)),
	}
	if _, ok := builtinTexts[m.defaultLang]; !ok {
		return nil, fmt.Errorf("loading messages: no built-in texts for default language %q (built in: %s)",
			cfg.DefaultLang, strings.Join(Languages(), ", "))
	}
	for lang, texts := range builtinTexts {
		var set messageSet
		for _, msg := range []struct {
			to         **template.Template
			kind, text string
		}{
			{&set.code, "code", texts.code},
			{&set.notice, "notice", texts.notice},
			{&set.lock, "lock", texts.lock},
			{&set.imposed, "imposed", texts.imposed},
		} {
			t, err := parseMessage(msg.kind+"_"+lang, msg.text, msg.to == &set.code)
			if err != nil {
				return nil, fmt.Errorf("loading messages: %w", err)
			}
			*msg.to = t
		}
		m.builtin[lang] = set
	}
	if cfg.CodeTemplate != "" {
		t, err := parseMessage("message_template", cfg.CodeTemplate, true)
		if err != nil {
			return nil, fmt.Errorf("loading messages: %w", err)
		}
		m.custom = t
	}
	return m, nil
}

// Languages returns the languages with built-in texts, sorted.
func Languages() []string {
	return slices.Sorted(maps.Keys(builtinTexts))
}

// Code renders the message that carries a code: the operator's template if
// there is one, else the built-in text in lang if there is one for it, else
// in the default language. lang is a BCP 47 tag such as "nl" or "de-CH"; only
// its primary subtag counts.
func (m *Messages) Code(lang string, d MessageData) (string, error) {
	if d.Code == "" || d.Host == "" {
		return "", errors.New("rendering code message: code and host are required")
	}
	t := m.custom
	if t == nil {
		t = m.builtin[m.lang(lang)].code
	}
	return render(t, d)
}

// Notice renders the message sent after a successful reset, in lang if there
// are built-in texts for it and in the default language otherwise.
func (m *Messages) Notice(lang string, d MessageData) (string, error) {
	return render(m.builtin[m.lang(lang)].notice, d)
}

// LockNotice renders the message that tells an account's phone its
// recovery was locked after wrong codes, in lang if there are built-in texts
// for it and in the default language otherwise.
func (m *Messages) LockNotice(lang string, d MessageData) (string, error) {
	return render(m.builtin[m.lang(lang)].lock, d)
}

// ImposedNotice renders the message that tells an account's phone support
// locked its recovery, in lang if there are built-in texts for it and in
// the default language otherwise.
func (m *Messages) ImposedNotice(lang string, d MessageData) (string, error) {
	return render(m.builtin[m.lang(lang)].imposed, d)
}

// referenceLabels introduce the support reference at the end of a notice,
// by language; each is plain GSM-7.
var referenceLabels = map[string]string{
	"en": "Reference for support:",
	"de": "Referenz für den Support:",
	"nl": "Referentie voor support:",
	"fr": "Référence pour le support :",
}

// WithReference returns body, a notice rendered in lang, with a last line
// that gives the support reference ref (see TraceRef), when the whole
// still fits in two GSM-7 segments; otherwise, or without a reference,
// body as it is: the notice matters more than its reference, and a third
// segment or a switch to UCS-2 would cost more than it is worth.
func (m *Messages) WithReference(lang, body, ref string) string {
	if ref == "" {
		return body
	}
	out := body + "\n" + referenceLabels[m.lang(lang)] + " " + ref
	if !IsGSM7(out) || Segments(out) > 2 {
		return body
	}
	return out
}

// lang returns the built-in language to use for a BCP 47 tag.
func (m *Messages) lang(tag string) string {
	if lang := primaryLang(tag); builtinTexts[lang].code != "" {
		return lang
	}
	return m.defaultLang
}

// primaryLang returns the primary subtag of a BCP 47 tag or POSIX locale,
// lowercased: "de-CH" and "nl_BE" give "de" and "nl".
func primaryLang(tag string) string {
	primary, _, _ := strings.Cut(strings.TrimSpace(tag), "-")
	primary, _, _ = strings.Cut(primary, "_")
	return strings.ToLower(primary)
}

// render renders t with d, without the blank space it ends with.
func render(t *template.Template, d MessageData) (string, error) {
	var b strings.Builder
	b.Grow(2 * gsm7Multi) // a message of two segments
	if err := t.Execute(&b, d); err != nil {
		return "", fmt.Errorf("rendering %s message: %w", t.Name(), err)
	}
	return strings.TrimRight(b.String(), " \t\r\n"), nil
}

// sampleData is what a code template is rendered with at load, to check that
// it runs and ends with the origin-bound line.
var sampleData = MessageData{
	SiteName: "Example Mail",
	Code:     "123456",
	Minutes:  5,
	Link:     "https://mail.example.com/recovery/?flow=sample",
	Host:     "mail.example.com",
	Support:  "Call +1 555 0100",
}

// parseMessage parses and checks one message template. Its errors start with
// the template's name and, where there is one, the line and column.
func parseMessage(name, text string, isCode bool) (*template.Template, error) {
	t, err := template.New(name).Parse(text)
	if err != nil {
		return nil, err
	}
	known := messageFields()
	// at names a place in text for an error: nodes of every template that
	// text defines hold byte offsets into it.
	at := func(off int) string {
		line := 1 + strings.Count(text[:off], "\n")
		col := 1 + utf8.RuneCountInString(text[strings.LastIndex(text[:off], "\n")+1:off])
		return fmt.Sprintf("%s: line %d, column %d", name, line, col)
	}
	usesCode := false
	for _, tt := range t.Templates() {
		if tt.Tree == nil {
			continue
		}
		err := walk(tt.Tree.Root, func(n parse.Node) error {
			var fields []string // the path of fields of MessageData that n names
			switch n := n.(type) {
			case *parse.TextNode:
				if i := nonGSM7(string(n.Text)); i >= 0 {
					r, _ := utf8.DecodeRune(n.Text[i:])
					return fmt.Errorf("%s: character %q (%U) is not in the GSM-7 alphabet", at(int(n.Pos)+i), r, r)
				}
			case *parse.StringNode:
				if i := nonGSM7(n.Text); i >= 0 {
					r, _ := utf8.DecodeRuneInString(n.Text[i:])
					return fmt.Errorf("%s: character %q (%U) is not in the GSM-7 alphabet", at(int(n.Pos)), r, r)
				}
			case *parse.FieldNode:
				fields = n.Ident
			case *parse.VariableNode:
				fields = n.Ident[1:]
			case *parse.ChainNode:
				// A field of the result of a pipeline: every field of
				// MessageData is a string or an int, which have none.
				return fmt.Errorf("%s: unknown field .%s", at(int(n.Pos)), strings.Join(n.Field, "."))
			}
			if len(fields) == 0 {
				return nil
			}
			if len(fields) > 1 || !slices.Contains(known, fields[0]) {
				return fmt.Errorf("%s: unknown field .%s (known: .%s)",
					at(int(n.Position())), strings.Join(fields, "."), strings.Join(known, ", ."))
			}
			usesCode = usesCode || fields[0] == "Code"
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	if !isCode {
		return t, nil
	}
	if !usesCode {
		return nil, fmt.Errorf("%s: the template does not use {{.Code}}", name)
	}
	out, err := render(t, sampleData)
	if err != nil {
		return nil, err
	}
	lines := strings.Split(out, "\n")
	if lines[len(lines)-1] != "@"+sampleData.Host+" #"+sampleData.Code {
		return nil, fmt.Errorf(`%s: the last line must be exactly "@{{.Host}} #{{.Code}}", so that phones can offer to fill the code in`, name)
	}
	return t, nil
}

// messageFields returns the names of the fields of MessageData.
func messageFields() []string {
	var names []string
	for _, f := range reflect.VisibleFields(reflect.TypeFor[MessageData]()) {
		names = append(names, f.Name)
	}
	return names
}

// nonGSM7 returns the byte offset of the first character of s outside the
// GSM-7 alphabet, or -1. Literal text outside it would turn the whole SMS
// into UCS-2, where a segment holds 70 characters instead of 160.
func nonGSM7(s string) int {
	for i, r := range s {
		if gsm7Width(r) == 0 {
			return i
		}
	}
	return -1
}

// walk calls visit for n and every node below it, stopping at the first
// error.
func walk(n parse.Node, visit func(parse.Node) error) error {
	if n == nil || reflect.ValueOf(n).IsNil() { // e.g. an IfNode without else
		return nil
	}
	if err := visit(n); err != nil {
		return err
	}
	var children []parse.Node
	switch n := n.(type) {
	case *parse.ListNode:
		children = n.Nodes
	case *parse.ActionNode:
		children = []parse.Node{n.Pipe}
	case *parse.PipeNode:
		for _, c := range n.Cmds {
			children = append(children, c)
		}
	case *parse.CommandNode:
		children = n.Args
	case *parse.ChainNode:
		children = []parse.Node{n.Node}
	case *parse.IfNode:
		children = []parse.Node{n.Pipe, n.List, n.ElseList}
	case *parse.RangeNode:
		children = []parse.Node{n.Pipe, n.List, n.ElseList}
	case *parse.WithNode:
		children = []parse.Node{n.Pipe, n.List, n.ElseList}
	case *parse.TemplateNode:
		children = []parse.Node{n.Pipe}
	}
	for _, c := range children {
		if err := walk(c, visit); err != nil {
			return err
		}
	}
	return nil
}
