package httpsig

import (
	"net/http"
	"testing"
)

func TestStrip(t *testing.T) {
	t.Parallel()
	h := http.Header{
		"Content-Type":       {"application/json"},
		HeaderAccount:        {"mallory@example.com", "x"},
		HeaderContentDigest:  {specDigest},
		HeaderSignature:      {specSignature},
		HeaderSignatureInput: {specSigInput},
	}
	Strip(h)
	if len(h) != 1 || h.Get("Content-Type") != "application/json" {
		t.Errorf("after Strip: %v, want only Content-Type", h)
	}
}
