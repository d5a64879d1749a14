package caddyfile

import (
	"strings"
	"testing"

	cf "github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/module"
)

// TestParseLoggingAndErrors reads log_accounts and handle_errors: their
// values, their defaults when left out, and the errors of a bad line, with
// the bad value quoted.
func TestParseLoggingAndErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		input        string
		wantAccounts string
		wantErrors   bool
		wantErr      string
	}{
		{name: "defaults", input: "sms_recovery {\n}"},
		{name: "hashed", input: "sms_recovery {\nlog_accounts hashed\n}", wantAccounts: "hashed"},
		{name: "clear", input: "sms_recovery {\nlog_accounts clear\n}", wantAccounts: "clear"},
		{name: "handle_errors", input: "sms_recovery {\nhandle_errors\n}", wantErrors: true},
		{name: "unknown mode", input: "sms_recovery {\nlog_accounts Clear\n}", wantErr: "log_accounts: 'Clear' is neither hashed nor clear"},
		{name: "no mode", input: "sms_recovery {\nlog_accounts\n}", wantErr: "wrong argument count"},
		{name: "two modes", input: "sms_recovery {\nlog_accounts hashed clear\n}", wantErr: "wrong argument count"},
		{name: "log_accounts twice", input: "sms_recovery {\nlog_accounts clear\nlog_accounts clear\n}", wantErr: "duplicate subdirective 'log_accounts'"},
		{name: "handle_errors with a value", input: "sms_recovery {\nhandle_errors off\n}", wantErr: "wrong argument count"},
		{name: "handle_errors twice", input: "sms_recovery {\nhandle_errors\nhandle_errors\n}", wantErr: "duplicate subdirective 'handle_errors'"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m, ok := parseHandler(t, tt.input, tt.wantErr)
			if !ok {
				return
			}
			if m.LogAccounts != tt.wantAccounts || m.HandleErrors != tt.wantErrors {
				t.Errorf("log_accounts %q, handle_errors %v; want %q, %v", m.LogAccounts, m.HandleErrors, tt.wantAccounts, tt.wantErrors)
			}
		})
	}
}

// parseHandler parses input, an sms_recovery directive. With wantErr set,
// it fails the test unless parsing fails with an error containing wantErr,
// and returns false; otherwise it fails the test on any error.
func parseHandler(t *testing.T, input, wantErr string) (module.Handler, bool) {
	t.Helper()
	var m module.Handler
	err := m.UnmarshalCaddyfile(cf.NewTestDispenser(input))
	if wantErr != "" {
		if err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Fatalf("error = %v, want one containing %q", err, wantErr)
		}
		return m, false
	}
	if err != nil {
		t.Fatal(err)
	}
	return m, true
}
