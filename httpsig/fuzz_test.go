package httpsig

import (
	"net/http"
	"strings"
	"testing"
)

// FuzzVerify feeds arbitrary Signature-Input, Signature and Content-Digest
// values to the verifier: it must never panic, and never accept a request
// that does not carry the vector's own signature (a respelling of the same
// fields may verify: they are compared in canonical form).
func FuzzVerify(f *testing.F) {
	f.Add(specSigInput, specSignature, specDigest)
	f.Add(`recovery=("@method" "@path");created=1;expires=2;nonce="n";keyid="gw1";alg="hmac-sha256";tag="sms-recovery"`, "recovery=:AAAA:", "sha-256=:AAAA:")
	f.Add(`recovery=("@method";x=1)`, `recovery=?1`, `sha-256=1`)
	f.Add(`recovery=(`, `recovery=:`, `sha-256=:`)
	f.Add("recovery=(\"a\" \"a\")", "x=:AA==:, recovery=:AA==:", "md5=:AA==:, sha-256=:AA==:")
	v := newSpecVerifier(f)
	f.Fuzz(func(t *testing.T, input, sig, digest string) {
		r := specRequest()
		r.h = http.Header{
			HeaderAccount:        {specAccount},
			HeaderSignatureInput: {input},
			HeaderSignature:      {sig},
			HeaderContentDigest:  {digest},
		}
		_, err := v.Verify(t.Context(), r.h, r.method, r.path, r.body, specNow)
		if err == nil && !strings.Contains(sig, strings.TrimPrefix(specSignature, "recovery=")) {
			t.Fatalf("accepted a request that is not the vector: %q %q %q", input, sig, digest)
		}
	})
}
