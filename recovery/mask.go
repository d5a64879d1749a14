package recovery

import (
	"fmt"
	"net/netip"
	"strings"
	"unicode/utf8"
)

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

// MaskAccount hides the local part of an account name but its first
// character behind five stars and keeps the domain, e.g.
// "alice@example.com" becomes "a*****@example.com": enough for support to
// tell a listing's rows apart, not enough to read whose they are. A local
// part of one character is hidden entirely; so is a name without a domain,
// but for its first character. The stars do not tell the length.
func MaskAccount(account string) string {
	local, domain := account, ""
	if i := strings.LastIndexByte(account, '@'); i >= 0 {
		local, domain = account[:i], account[i:]
	}
	masked := "*****"
	if r, size := utf8.DecodeRuneInString(local); size < len(local) {
		masked = string(r) + masked
	}
	return masked + domain
}

// MaskClient hides the host part of a client's address, as the usual
// anonymisation of an address does: the last byte of an IPv4 address (a
// /24 is left), all but the first 48 bits of an IPv6 address or /64 (a
// site's prefix is left), e.g. "192.0.2.7" becomes "192.0.2.*" and
// "2001:db8:1:2::/64" "2001:db8:1:*". Anything else is hidden entirely.
func MaskClient(key string) string {
	addr, err := netip.ParseAddr(key)
	if err != nil {
		p, perr := netip.ParsePrefix(key)
		if perr != nil {
			return "*****"
		}
		addr = p.Addr()
	}
	addr = addr.Unmap()
	if addr.Is4() {
		b := addr.As4()
		return fmt.Sprintf("%d.%d.%d.*", b[0], b[1], b[2])
	}
	b := addr.As16()
	return fmt.Sprintf("%x:%x:%x:*", uint16(b[0])<<8|uint16(b[1]), uint16(b[2])<<8|uint16(b[3]), uint16(b[4])<<8|uint16(b[5]))
}
