package recovery

import "strings"

// MaskPhone hides all but the first three and the last three characters of
// a phone number behind five stars, e.g. "+31612345678" becomes
// "+31*****678". The stars do not tell the length. Strings too short to mask
// this way are hidden entirely.
func MaskPhone(phone string) string {
	p := strings.TrimSpace(phone)
	if len(p) < 8 {
		return "*****"
	}
	return p[:3] + "*****" + p[len(p)-3:]
}
