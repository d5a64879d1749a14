package caddyfile

import (
	"net"
	"reflect"
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
)

// sitePublicURL returns the public URL the addresses of a site block name,
// by Caddy's own rules: an address without a scheme is https unless its
// port is the HTTP port, and one without a port is served on the HTTP or
// HTTPS port. It returns "" unless every address names the same scheme,
// host and port: a site with no host (":8080"), several hosts, a wildcard
// or a placeholder has no public URL that a forged Host header could not
// choose among, so public_url must be set.
func sitePublicURL(addresses []string, httpPort, httpsPort string) string {
	var found string
	for _, addr := range addresses {
		u := addressURL(addr, httpPort, httpsPort)
		if u == "" || (found != "" && u != found) {
			return ""
		}
		found = u
	}
	return found
}

// addressURL returns the scheme, host and port a site address names, or
// "" if it names no single host.
func addressURL(addr, httpPort, httpsPort string) string {
	a, err := httpcaddyfile.ParseAddress(addr)
	if err != nil || a.Host == "" || strings.ContainsAny(a.Host, "*{}") {
		return ""
	}
	scheme := a.Scheme
	if scheme == "" {
		scheme = "https"
		if a.Port == httpPort {
			scheme = "http"
		}
	}
	port, standard := a.Port, "443"
	switch scheme {
	case "https":
		if port == "" {
			port = httpsPort
		}
	case "http":
		if port == "" {
			port = httpPort
		}
		standard = "80"
	default:
		return ""
	}
	host := strings.ToLower(a.Host)
	if port == standard {
		if strings.Contains(host, ":") {
			host = "[" + host + "]" // IPv6
		}
		return scheme + "://" + host
	}
	return scheme + "://" + net.JoinHostPort(host, port)
}

// portOption returns the global option name (http_port or https_port), or
// def if it is not set.
func portOption(h httpcaddyfile.Helper, name, def string) string {
	if p, ok := h.Option(name).(int); ok {
		return strconv.Itoa(p)
	}
	return def
}

// siteAddresses returns the addresses of the site block the directive of h
// is in. Caddy keeps the block in an unexported field of Helper and offers
// no accessor, so it is read by reflection, which may read an unexported
// field but never write one. Should a later Caddy rename the field, no
// address is found, public_url is left out, and the config refuses to load
// until public_url is set: it fails safe, and TestPublicURLFromSiteAddress
// fails with it.
func siteAddresses(h httpcaddyfile.Helper) []string {
	block := reflect.ValueOf(h).FieldByName("parentBlock")
	if block.Kind() != reflect.Struct {
		return nil
	}
	keys := block.FieldByName("Keys")
	if keys.Kind() != reflect.Slice {
		return nil
	}
	out := make([]string, 0, keys.Len())
	for i := range keys.Len() {
		key := keys.Index(i)
		if key.Kind() != reflect.Struct {
			return nil
		}
		text := key.FieldByName("Text")
		if text.Kind() != reflect.String {
			return nil
		}
		out = append(out, text.String())
	}
	return out
}
