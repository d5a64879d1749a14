package caddyfile

import (
	"strings"
	"testing"

	cf "github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/module"
)

// TestParseLogAccounts reads log_accounts: its values, its default when
// left out, and the errors of a bad line, with the bad value quoted.
func TestParseLogAccounts(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		input        string
		wantAccounts string
		wantErr      string
	}{
		{name: "defaults", input: "sms_recovery {\n}"},
		{name: "hashed", input: "sms_recovery {\nlog_accounts hashed\n}", wantAccounts: "hashed"},
		{name: "clear", input: "sms_recovery {\nlog_accounts clear\n}", wantAccounts: "clear"},
		{name: "unknown mode", input: "sms_recovery {\nlog_accounts Clear\n}", wantErr: "log_accounts: 'Clear' is neither hashed nor clear"},
		{name: "no mode", input: "sms_recovery {\nlog_accounts\n}", wantErr: "wrong argument count"},
		{name: "two modes", input: "sms_recovery {\nlog_accounts hashed clear\n}", wantErr: "wrong argument count"},
		{name: "log_accounts twice", input: "sms_recovery {\nlog_accounts clear\nlog_accounts clear\n}", wantErr: "duplicate subdirective 'log_accounts'"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var m module.Handler
			err := UnmarshalRecovery(cf.NewTestDispenser(tt.input), &m)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if m.LogAccounts != tt.wantAccounts {
				t.Errorf("log_accounts %q, want %q", m.LogAccounts, tt.wantAccounts)
			}
		})
	}
}
