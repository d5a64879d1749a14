package httpsig

import (
	"crypto/ed25519"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
)

// LoadEd25519PrivateKey reads an ed25519 private key from a PEM file holding
// a PKCS#8 "PRIVATE KEY" block, as `openssl genpkey -algorithm ed25519`
// writes it.
func LoadEd25519PrivateKey(path string) (ed25519.PrivateKey, error) {
	der, err := readPEM(path, "PRIVATE KEY")
	if err != nil {
		return nil, fmt.Errorf("loading ed25519 private key: %w", err)
	}
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("loading ed25519 private key %s: %w", path, err)
	}
	key, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("loading ed25519 private key %s: key is %T, not ed25519", path, k)
	}
	return key, nil
}

// LoadEd25519PublicKey reads an ed25519 public key from a PEM file holding a
// PKIX "PUBLIC KEY" block, as `openssl pkey -pubout` writes it.
func LoadEd25519PublicKey(path string) (ed25519.PublicKey, error) {
	der, err := readPEM(path, "PUBLIC KEY")
	if err != nil {
		return nil, fmt.Errorf("loading ed25519 public key: %w", err)
	}
	k, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return nil, fmt.Errorf("loading ed25519 public key %s: %w", path, err)
	}
	key, ok := k.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("loading ed25519 public key %s: key is %T, not ed25519", path, k)
	}
	return key, nil
}

// readPEM returns the bytes of the first PEM block in the file, which must
// be of type typ.
func readPEM(path, typ string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, fmt.Errorf("%s: no PEM block", path)
	}
	if block.Type != typ {
		return nil, fmt.Errorf("%s: PEM block is %q, want %q", path, block.Type, typ)
	}
	return block.Bytes, nil
}
