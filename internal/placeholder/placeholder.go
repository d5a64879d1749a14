// Package placeholder expands Caddy's global placeholders, such as
// {env.LDAP_PASSWORD}, in the settings of the guest modules and of the
// gateway, and refuses a setting whose placeholder expands to nothing: an
// unset environment variable must stop the load with a message that says
// so, not surface later as a malformed key or an unreachable server.
package placeholder

import (
	"fmt"
	"os"
	"regexp"

	"github.com/caddyserver/caddy/v2"
)

// envPlaceholder matches {env.NAME}, as Caddy's replacer reads it.
var envPlaceholder = regexp.MustCompile(`\{env\.([^{}]+)\}`)

// Expand replaces the global placeholders of *s in place, with repl (a new
// caddy.Replacer when nil). It fails, naming field and the placeholder but
// never a value, when *s names an environment variable that is unset or
// empty, or when a non-empty setting expands to nothing.
func Expand(repl *caddy.Replacer, field string, s *string) error {
	if *s == "" {
		return nil
	}
	if repl == nil {
		repl = caddy.NewReplacer()
	}
	for _, m := range envPlaceholder.FindAllStringSubmatch(*s, -1) {
		if os.Getenv(m[1]) == "" {
			return fmt.Errorf("%s: placeholder %s is empty (is the environment variable %s set?)", field, m[0], m[1])
		}
	}
	orig := *s
	*s = repl.ReplaceKnown(*s, "")
	if *s == "" {
		return fmt.Errorf("%s: %q expands to nothing", field, orig)
	}
	return nil
}
