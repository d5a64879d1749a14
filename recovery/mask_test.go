package recovery

import "testing"

func TestMaskPhone(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"+31612345678":   "+31*****678",
		"+4915123456789": "+49*****789",
		" +14155550123 ": "+14*****123",
		"+3161":          "*****",
		"":               "*****",
	} {
		if got := MaskPhone(in); got != want {
			t.Errorf("MaskPhone(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestMaskAccount(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"alice@example.com":     "a*****@example.com",
		"al@example.com":        "a*****@example.com",
		"a@example.com":         "*****@example.com",
		"@example.com":          "*****@example.com",
		"ünïcode@example.com":   "ü*****@example.com",
		"\"a@b\"@example.com":   "\"*****@example.com",
		"alice":                 "a*****",
		"a":                     "*****",
		"":                      "*****",
		"alice@sub.example.org": "a*****@sub.example.org",
	} {
		if got := MaskAccount(in); got != want {
			t.Errorf("MaskAccount(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestMaskClient(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"192.0.2.7":            "192.0.2.*",
		"::ffff:192.0.2.7":     "192.0.2.*",
		"2001:db8:1:2::/64":    "2001:db8:1:*",
		"2001:db8:1:2:3:4:5:6": "2001:db8:1:*",
		"2001:db8::/64":        "2001:db8:0:*",
		"fe80::1%eth0":         "fe80:0:0:*",
		"not an address":       "*****",
		"":                     "*****",
		"192.0.2.0/24":         "192.0.2.*",
	} {
		if got := MaskClient(in); got != want {
			t.Errorf("MaskClient(%q) = %q, want %q", in, got, want)
		}
	}
}
