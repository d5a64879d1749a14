package verify

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"os"
	"strings"
	"unicode/utf8"

	"go.uber.org/zap"
)

// defaultMinPasswordLength is the least length of a new password, in
// characters: NIST SP 800-63B-4 asks for 15 when the password is the only
// factor.
const defaultMinPasswordLength = 15

// defaultPasswordField is the body field that holds the new password.
const defaultPasswordField = "password"

// policy is what a new password must meet before a writer gets it.
type policy struct {
	minLength int
	blocked   map[string]bool // lower-cased
}

// loadPolicy reads the blocklist file, one password a line, if path is set.
func loadPolicy(minLength int, path string) (policy, error) {
	p := policy{minLength: minLength, blocked: map[string]bool{}}
	if path == "" {
		return p, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return p, fmt.Errorf("password_blocklist: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if line := strings.TrimSpace(sc.Text()); line != "" {
			p.blocked[strings.ToLower(line)] = true
		}
	}
	if err := sc.Err(); err != nil {
		return p, fmt.Errorf("password_blocklist: %w", err)
	}
	return p, nil
}

// check returns the refusal of password for account, or nil if it passes.
func (p policy) check(account, password string) *problem {
	switch {
	case password == "":
		return refusal("required", "The request holds no new password.")
	case utf8.RuneCountInString(password) < p.minLength:
		return refusal("min_length", fmt.Sprintf("The new password must be at least %d characters long.", p.minLength))
	case strings.EqualFold(password, account):
		return refusal("not_account", "The new password must not be the account's name.")
	case p.blocked[strings.ToLower(password)]:
		return refusal("blocklist", "The new password is too common. Choose another.")
	}
	return nil
}

// refusal is the 400 for a new password that breaks rule.
func refusal(rule, message string) *problem {
	return &problem{status: http.StatusBadRequest, Code: "weak_password", Rule: rule, Message: message}
}

var (
	errUnknownAccount = problem{status: http.StatusNotFound, Code: "unknown_account",
		Message: "The password store has no such account."}
	errWriteFailed = problem{status: http.StatusInternalServerError, Code: "write_failed",
		Message: "The new password could not be written. Try again shortly."}
)

// passwordFrom returns the field named name of a JSON or form body.
func passwordFrom(contentType string, body []byte, name string) string {
	if mt, _, _ := mime.ParseMediaType(contentType); mt == "application/x-www-form-urlencoded" {
		v, _ := url.ParseQuery(string(body))
		return v.Get(name)
	}
	var obj map[string]json.RawMessage
	var s string
	if json.Unmarshal(body, &obj) == nil {
		_ = json.Unmarshal(obj[name], &s)
	}
	return s
}

// setPassword answers a verified reset itself: it checks the new password
// against the policy and has the writer set it.
func (h *Handler) setPassword(w http.ResponseWriter, r *http.Request, account string, body []byte) {
	password := passwordFrom(r.Header.Get("Content-Type"), body, h.PasswordField)
	if p := h.policy.check(account, password); p != nil {
		refuse(w, *p)
		return
	}
	err := h.writer.SetPassword(r.Context(), account, password)
	switch {
	case errors.Is(err, ErrPasswordTooLong):
		refuse(w, *refusal("max_length", "The new password is too long for this mail service. Choose a shorter one."))
	case errors.Is(err, ErrUnknownAccount):
		h.logger.Warn("refused a reset for an account the password store lacks", zap.String("account", account))
		refuse(w, errUnknownAccount)
	case err != nil:
		h.logger.Error("writing a new password", zap.String("account", account), zap.Error(err))
		refuse(w, errWriteFailed)
	default:
		h.logger.Info("set a new password", zap.String("account", account))
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusNoContent)
	}
}
