package sms

import (
	"context"
	"errors"
	"testing"
)

func TestErrorText(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		err  *Error
		want string
	}{
		{"status only", &Error{Provider: "p", Status: 503}, "p: status 503"},
		{"no answer", &Error{Provider: "p", Err: context.DeadlineExceeded}, "p: request failed: context deadline exceeded"},
		{"refused before sending", &Error{Provider: "p", Permanent: true}, "p: delivery failed"},
		{"everything", &Error{Provider: "p", Status: 422, Code: 9, Parameter: "recipients", Detail: "no (correct) recipients found",
			Err: errors.New("check the number")},
			"p: status 422, error code 9 (parameter recipients): no (correct) recipients found: check the number"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := tt.err.Error(); got != tt.want {
				t.Errorf("Error() = %q, want %q", got, tt.want)
			}
		})
	}
}
