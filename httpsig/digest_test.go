package httpsig

import (
	"errors"
	"testing"
)

func TestContentDigest(t *testing.T) {
	t.Parallel()
	tests := []struct {
		body, want string
	}{
		// SHA-256 of the empty string, the FIPS 180-2 "abc" vector, and the
		// SPEC §6 body.
		{"", "sha-256=:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=:"},
		{"abc", "sha-256=:ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0=:"},
		{specBody, specDigest},
	}
	for _, tt := range tests {
		if got := ContentDigest([]byte(tt.body)); got != tt.want {
			t.Errorf("ContentDigest(%q) = %s, want %s", tt.body, got, tt.want)
		}
	}
}

func TestCheckContentDigest(t *testing.T) {
	t.Parallel()
	body := []byte(specBody)
	tests := []struct {
		name  string
		value string
		want  error
	}{
		{"match", specDigest, nil},
		{"with another algorithm first", "sha-512=:AAAA:, " + specDigest, nil},
		{"with parameters", specDigest + ";p=1", nil},
		{"mismatch", ContentDigest([]byte("other")), ErrDigest},
		{"only sha-512", "sha-512=:AAAA:", ErrDigest},
		{"empty", "", ErrDigest},
		{"not a byte sequence", `sha-256="CFctwq1O4OyY2N07Cv+SoWEx2jDGAGy8rXdEzsYhnTk="`, ErrMalformed},
		{"unparsable", "sha-256=:CFct", ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if err := checkContentDigest(tt.value, body); !errors.Is(err, tt.want) {
				t.Errorf("checkContentDigest(%q) = %v, want %v", tt.value, err, tt.want)
			}
		})
	}
}
