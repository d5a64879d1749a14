package recovery

import "strings"

// MaskPhone hides all but the country prefix and the last three digits of a
// phone number, e.g. "+31612345678" becomes "+31*****678". Short or odd
// strings are hidden entirely.
func MaskPhone(phone string) string {
	p := strings.TrimSpace(phone)
	if len(p) < 8 {
		return strings.Repeat("*", len(p))
	}
	head, tail := 3, 3
	return p[:head] + strings.Repeat("*", len(p)-head-tail) + p[len(p)-tail:]
}
