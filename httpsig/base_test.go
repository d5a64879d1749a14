package httpsig

import (
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"testing"
)

// RFC 9421 appendix B.2 signs parts of its test-request:
//
//	POST /foo?param=Value&Pet=dog HTTP/1.1
//	Host: example.com
//	Date: Tue, 20 Apr 2021 02:07:55 GMT
//	Content-Type: application/json
//	Content-Length: 18
const rfcSharedSecret = "uzvJfB4u3N0Jy4T7NZ75MDVcr8zSTInedJtkgcu46YW4XByzNJjxBdtjUkdJPBtbmHhIDi6pcl8jsasjlTMtDQ=="

func TestSignatureBaseRFC9421(t *testing.T) {
	t.Parallel()
	priv, err := LoadEd25519PrivateKey("testdata/test-key-ed25519.pem")
	if err != nil {
		t.Fatal(err)
	}
	secret, err := base64.StdEncoding.DecodeString(rfcSharedSecret)
	if err != nil {
		t.Fatal(err)
	}
	var (
		date        = component{"date", "Tue, 20 Apr 2021 02:07:55 GMT"}
		authority   = component{"@authority", "example.com"}
		contentType = component{"content-type", "application/json"}
	)
	tests := []struct {
		name       string
		components []component
		params     sfParams
		sign       func([]byte) []byte
		wantParams string
		wantSig    string
	}{
		{
			name:       "B.2.5 hmac-sha256",
			components: []component{date, authority, contentType},
			params:     sfParams{{"created", int64(1618884473)}, {"keyid", "test-shared-secret"}},
			sign:       func(b []byte) []byte { return hmacSHA256(secret, b) },
			wantParams: `("date" "@authority" "content-type");created=1618884473;keyid="test-shared-secret"`,
			wantSig:    "pxcQw6G3AjtMBQjwo8XzkZf/bws5LelbaMk5rGIGtE8=",
		},
		{
			name: "B.2.6 ed25519",
			components: []component{date, {"@method", "POST"}, {"@path", "/foo"}, authority, contentType,
				{"content-length", "18"}},
			params:     sfParams{{"created", int64(1618884473)}, {"keyid", "test-key-ed25519"}},
			sign:       func(b []byte) []byte { return ed25519.Sign(priv, b) },
			wantParams: `("date" "@method" "@path" "@authority" "content-type" "content-length");created=1618884473;keyid="test-key-ed25519"`,
			wantSig:    "wqcAqbmYJ2ji2glfAMaRy4gruYYnx2nEFN2HN6jrnDnQCK1u02Gb04v9EDgwUPiu4A0w6vuQv5lIp5WPpBKRCw==",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			params, err := signatureParams(tt.components, tt.params)
			if err != nil || params != tt.wantParams {
				t.Fatalf("signatureParams = %s, %v; want %s", params, err, tt.wantParams)
			}
			base, err := signatureBase(tt.components, params)
			if err != nil {
				t.Fatal(err)
			}
			if got := base64.StdEncoding.EncodeToString(tt.sign(base)); got != tt.wantSig {
				t.Errorf("signature = %s, want %s; base:\n%s", got, tt.wantSig, base)
			}
		})
	}
}

func TestSignatureBaseRefusesLineBreaks(t *testing.T) {
	t.Parallel()
	for _, value := range []string{"a\nb", "a\rb", "a\x00b"} {
		_, err := signatureBase([]component{{"x-a", value}}, "()")
		if !errors.Is(err, ErrMalformed) {
			t.Errorf("signatureBase(%q) error = %v, want ErrMalformed", value, err)
		}
	}
}
