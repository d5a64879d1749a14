package examplekey

import (
	"os"
	"regexp"
	"testing"
)

// TestHMACKeyIsTheExamples: the key the examples publish is HMACKey, in
// every place they give one, so that a new example key is refused too.
func TestHMACKeyIsTheExamples(t *testing.T) {
	key := regexp.MustCompile(`"?hmac_key"?:?\s+"?([A-Za-z0-9+/=]+)`)
	for _, name := range []string{"../../examples/Caddyfile", "../../examples/caddy.json"} {
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		found := key.FindAllSubmatch(b, -1)
		if len(found) == 0 {
			t.Errorf("%s gives no hmac_key", name)
		}
		for _, m := range found {
			if string(m[1]) != HMACKey {
				t.Errorf("%s gives an hmac_key that is not HMACKey", name)
			}
		}
	}
}

func TestLoopbackHost(t *testing.T) {
	for host, want := range map[string]bool{
		"localhost": true, "LOCALHOST": true, "mail.localhost": true, "127.0.0.1": true, "127.8.9.10": true, "::1": true,
		"": false, "example.com": false, "localhost.example.com": false, "0.0.0.0": false, "::": false,
		"192.0.2.1": false, "2001:db8::1": false, "notlocalhost": false,
	} {
		if got := LoopbackHost(host); got != want {
			t.Errorf("LoopbackHost(%q) = %v, want %v", host, got, want)
		}
	}
}
