// Package pages renders the web pages of the recovery flow: the templates,
// their texts in every language, and the stylesheet. It knows nothing of
// the flow itself; the gateway fills a View and serves what Render gives.
//
// The pages work with plain HTML forms, so that they work with JavaScript
// off, and carry no script: SetHeaders sets a Content-Security-Policy that
// allows none.
package pages

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"html/template"
	"io/fs"
	"maps"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

//go:embed assets
var files embed.FS

// Names are the pages a templates directory may replace, besides the layout
// every page is drawn in. notme is the page of the "this wasn't me" link of
// a reset notice.
var Names = []string{"account", "code", "password", "done", "problem", "notme"}

// ProblemStates are the states the problem page explains.
var ProblemStates = []string{
	"rate_limited", "locked", "blocked", "expired", "token",
	"upstream", "unavailable", "csrf", "invalid", "error",
	"link_invalid", "link_expired", "link_used",
}

// problemOfCode is the problem state of an error code of the API.
var problemOfCode = map[string]string{
	"rate_limited":    "rate_limited",
	"account_locked":  "locked",
	"ip_blocked":      "blocked",
	"expired":         "expired",
	"invalid_token":   "token",
	"unavailable":     "unavailable",
	"invalid_request": "invalid",
	"invalid_link":    "link_invalid",
	"link_expired":    "link_expired",
	"link_used":       "link_used",
}

// ProblemOf returns the problem state that explains an error code of the
// API (SPEC §4); any other code is "error".
func ProblemOf(code string) string {
	if s, ok := problemOfCode[code]; ok {
		return s
	}
	return "error"
}

// Set is the parsed templates, the texts and the stylesheet.
type Set struct {
	templates   map[string]*template.Template // by page name
	texts       map[string]map[string]string  // by language, then text key
	defaultLang string
	style       []byte
	styleTag    string // version of the stylesheet, for its URL
}

// New parses the page templates, with any that a file in templatesDir
// replaces, and reads the texts. lang is the language of a browser that
// asks for none the pages have; it must be one they have.
func New(lang, templatesDir string) (*Set, error) {
	s := &Set{defaultLang: primaryLang(lang)}
	var err error
	if s.texts, err = loadTexts(); err != nil {
		return nil, err
	}
	if _, ok := s.texts[s.defaultLang]; !ok {
		return nil, fmt.Errorf("language: no page texts for %q (have %s)", lang, strings.Join(slices.Sorted(maps.Keys(s.texts)), ", "))
	}
	if s.style, err = files.ReadFile("assets/style.css"); err != nil {
		return nil, fmt.Errorf("reading stylesheet: %w", err)
	}
	sum := sha256.Sum256(s.style)
	s.styleTag = hex.EncodeToString(sum[:6])
	sources, err := templateSources(templatesDir)
	if err != nil {
		return nil, fmt.Errorf("templates: %w", err)
	}
	s.templates = make(map[string]*template.Template, len(Names))
	for _, name := range Names {
		t, err := template.New("layout.html").Parse(sources["layout"])
		if err == nil {
			_, err = t.New(name + ".html").Parse(sources[name])
		}
		if err != nil {
			return nil, fmt.Errorf("templates: %w", err)
		}
		s.templates[name] = t
	}
	return s, nil
}

// loadTexts reads the built-in texts, one JSON file per language.
func loadTexts() (map[string]map[string]string, error) {
	names, err := fs.Glob(files, "assets/lang/*.json")
	if err != nil {
		return nil, err
	}
	texts := make(map[string]map[string]string, len(names))
	for _, f := range names {
		b, err := files.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("reading page texts: %w", err)
		}
		var m map[string]string
		if err := json.Unmarshal(b, &m); err != nil {
			return nil, fmt.Errorf("reading page texts %s: %w", path.Base(f), err)
		}
		texts[strings.TrimSuffix(path.Base(f), ".json")] = m
	}
	return texts, nil
}

// templateSources returns the source of the layout and of every page: the
// built-in one, or the file of the same name in dir. A file in dir that
// replaces nothing is refused, so that a misspelt name does not go unseen.
func templateSources(dir string) (map[string]string, error) {
	src := make(map[string]string, len(Names)+1)
	for _, name := range append([]string{"layout"}, Names...) {
		b, err := files.ReadFile("assets/" + name + ".html")
		if err != nil {
			return nil, err
		}
		src[name] = string(b)
	}
	if dir == "" {
		return src, nil
	}
	if _, err := os.Stat(dir); err != nil {
		return nil, err
	}
	matches, err := filepath.Glob(filepath.Join(dir, "*.html"))
	if err != nil {
		return nil, err
	}
	for _, f := range matches {
		name := strings.TrimSuffix(filepath.Base(f), ".html")
		if _, ok := src[name]; !ok {
			return nil, fmt.Errorf("%s does not replace a built-in template (layout.html, %s.html)", f, strings.Join(Names, ".html, "))
		}
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		src[name] = string(b)
	}
	return src, nil
}

// Try renders every page in every language, with and without a message,
// and every problem state, starting each from base, so that a broken
// template is refused at load rather than shown to a person.
func (s *Set) Try(base func(lang string) *View) error {
	messages := map[string][2]string{ // error and notice keys each page may show
		"account":  {"account.error.empty", "account.notice.badlink"},
		"code":     {"code.error.wrong_other", "code.notice.resent"},
		"password": {"password.error.mismatch", ""},
		"notme":    {"", "notme.done.body"},
	}
	for _, lang := range slices.Sorted(maps.Keys(s.texts)) {
		for _, name := range Names {
			states := []string{""}
			if name == "problem" {
				states = ProblemStates
			}
			for _, state := range states {
				for _, withMessage := range []bool{false, true} {
					v := base(lang)
					v.Name, v.State, v.Next, v.RetryAfter, v.Attempts, v.Reference = name, state, "/", 90, 2, "K7QMX-2XD9T"
					if withMessage {
						v.Error, v.Notice = messages[name][0], messages[name][1]
					}
					if _, err := s.Render(v); err != nil {
						return fmt.Errorf("templates: %s.html in %q: %w", name, lang, err)
					}
				}
			}
		}
	}
	return nil
}

// View is what a page template sees. Error and Notice hold text keys,
// shown with T. Make one with Set.View.
type View struct {
	Name       string // the page: account, code, password, done or problem
	Lang       string // the language of the page, for <html lang>
	SiteName   string
	Support    string
	Prefix     string // the path prefix, for form actions and links
	Stylesheet string // the URL of the stylesheet
	CSRF       string // the value of every form's hidden csrf field
	Error      string // key of the text of what went wrong, if anything
	Notice     string // key of a text that confirms something, if any
	Account    string // the account as typed, kept when it is asked again
	Flow       string // the flow on the code page
	Digits     int    // the length of a code
	Minutes    int    // how long a code works
	MinLength  int    // the shortest new password
	Attempts   int    // codes that may still be tried
	State      string // on the problem page: what went wrong
	Next       string // on the problem page: the link to the next step
	Notified   bool   // on the done page: a notice went to the phone
	Reference  string // the support reference of a refusal, shown for support
	// Link is the token of a not-me link, on the page that asks to
	// confirm it; with Notice set, the page says the recovery is locked.
	Link string

	Status     int   // the HTTP status the page is served with
	RetryAfter int64 // seconds until trying again makes sense; 0 for none

	texts map[string]string
	vars  *strings.Replacer
}

// View starts a page in lang, which must be one Language can return,
// served with 200 unless its Status is changed.
func (s *Set) View(lang string) *View {
	return &View{Lang: lang, Status: http.StatusOK, texts: s.texts[lang]}
}

// T returns the text of key in the page's language, with {site},
// {support}, {digits}, {minutes}, {min}, {attempts}, {wait} and {account}
// (the account as the view has it: masked, on the not-me page) filled in.
// A key without a text fails the render.
func (v *View) T(key string) (string, error) {
	s, ok := v.texts[key]
	if !ok {
		return "", fmt.Errorf("no text %q", key)
	}
	return v.vars.Replace(s), nil
}

// Render executes v's template, filling in the variables of its texts.
func (s *Set) Render(v *View) ([]byte, error) {
	v.vars = strings.NewReplacer(
		"{site}", v.SiteName,
		"{support}", v.Support,
		"{digits}", strconv.Itoa(v.Digits),
		"{minutes}", strconv.Itoa(v.Minutes),
		"{min}", strconv.Itoa(v.MinLength),
		"{attempts}", strconv.Itoa(v.Attempts),
		"{wait}", waitText(v.texts, v.RetryAfter),
		"{reference}", v.Reference,
		"{account}", v.Account,
	)
	t, ok := s.templates[v.Name]
	if !ok {
		return nil, fmt.Errorf("no page %q", v.Name)
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout.html", v); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Style returns the stylesheet and its version, which its URL names so
// that the current one may be cached for good.
func (s *Set) Style() (css []byte, version string) { return s.style, s.styleTag }

// waitText says how long secs is in words, rounded up to a unit a person
// can plan with.
func waitText(texts map[string]string, secs int64) string {
	n, key := secs, "wait.seconds"
	switch {
	case secs <= 60:
	case secs <= 90*60:
		n, key = (secs+59)/60, "wait.minutes"
	default:
		n, key = (secs+3599)/3600, "wait.hours"
	}
	if n == 1 {
		key = strings.TrimSuffix(key, "s")
	}
	return strings.ReplaceAll(texts[key], "{n}", strconv.FormatInt(n, 10))
}

// SetHeaders sets the headers every page carries: no script, no framing,
// no caching and no referrer, which would leak the flow.
func SetHeaders(hdr http.Header) {
	hdr.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	hdr.Set("Referrer-Policy", "no-referrer")
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("X-Frame-Options", "DENY")
	hdr.Set("X-Content-Type-Options", "nosniff")
}

// Language picks the language of the pages that the Accept-Language header
// ranks highest, honouring q-values; ties go to the one named first.
// Without a match it is the default language.
func (s *Set) Language(header string) string {
	best, bestQ := s.defaultLang, 0.0
	for _, part := range strings.Split(header, ",") {
		tag, params, _ := strings.Cut(part, ";")
		q := 1.0
		if k, val, ok := strings.Cut(strings.TrimSpace(params), "="); ok && strings.TrimSpace(k) == "q" {
			f, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
			if err != nil || f < 0 || f > 1 {
				continue
			}
			q = f
		}
		lang := primaryLang(tag)
		if _, ok := s.texts[lang]; ok && q > bestQ {
			best, bestQ = lang, q
		}
	}
	return best
}

// primaryLang returns the primary subtag of a language tag, in lower case.
func primaryLang(tag string) string {
	tag, _, _ = strings.Cut(strings.TrimSpace(tag), "-")
	tag, _, _ = strings.Cut(tag, "_")
	return strings.ToLower(tag)
}
