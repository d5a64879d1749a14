package httpsig

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadEd25519Keys(t *testing.T) {
	t.Parallel()
	priv, err := LoadEd25519PrivateKey("testdata/test-key-ed25519.pem")
	if err != nil {
		t.Fatal(err)
	}
	pub, err := LoadEd25519PublicKey("testdata/test-key-ed25519.pub.pem")
	if err != nil {
		t.Fatal(err)
	}
	if !pub.Equal(priv.Public()) {
		t.Error("the public key file does not hold the private key's public key")
	}
}

func TestLoadKeyErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecPriv, err := x509.MarshalPKCS8PrivateKey(ec)
	if err != nil {
		t.Fatal(err)
	}
	ecPub, err := x509.MarshalPKIXPublicKey(&ec.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, data []byte) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	pemOf := func(typ string, der []byte) []byte { return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}) }
	edPub, err := os.ReadFile("testdata/test-key-ed25519.pub.pem")
	if err != nil {
		t.Fatal(err)
	}
	edPriv, err := os.ReadFile("testdata/test-key-ed25519.pem")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		path    string
		private bool
		want    string
	}{
		{"missing private", filepath.Join(dir, "nope.pem"), true, "no such file"},
		{"missing public", filepath.Join(dir, "nope.pem"), false, "no such file"},
		{"not PEM", write("garbage.pem", []byte("hello")), true, "no PEM block"},
		{"public key as private", write("pub-as-priv.pem", edPub), true, `"PUBLIC KEY", want "PRIVATE KEY"`},
		{"private key as public", write("priv-as-pub.pem", edPriv), false, `"PRIVATE KEY", want "PUBLIC KEY"`},
		{"ecdsa private", write("ec.pem", pemOf("PRIVATE KEY", ecPriv)), true, "not ed25519"},
		{"ecdsa public", write("ec.pub.pem", pemOf("PUBLIC KEY", ecPub)), false, "not ed25519"},
		{"corrupt private", write("bad.pem", pemOf("PRIVATE KEY", []byte{1, 2, 3})), true, "bad.pem"},
		{"corrupt public", write("bad.pub.pem", pemOf("PUBLIC KEY", []byte{1, 2, 3})), false, "bad.pub.pem"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var err error
			if tt.private {
				_, err = LoadEd25519PrivateKey(tt.path)
			} else {
				_, err = LoadEd25519PublicKey(tt.path)
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want error containing %q", err, tt.want)
			}
		})
	}
}
