// Package version tells which version of caddy-sms-recovery a program was
// built from, as the Go toolchain recorded it in the binary. The module
// reports it on GET <path_prefix>/healthz, in the log when a handler is
// provisioned, and as the metric caddy_sms_recovery_build_info.
package version

import "runtime/debug"

// Path is the module path of caddy-sms-recovery.
const Path = "github.com/caddy-sms-recovery/caddy-sms-recovery"

// Version is the version this program was built from, as Of tells it from
// the program's build information. It is set when the program starts;
// nothing assigns it after that.
var Version = Of(readBuildInfo())

func readBuildInfo() *debug.BuildInfo {
	bi, _ := debug.ReadBuildInfo()
	return bi
}

// devel is the version Go gives a module built from a directory rather
// than from a version of it.
const devel = "(devel)"

// Of returns the version of module Path that bi records:
//
//   - built as a dependency, by xcaddy build --with Path@v0.1.0 for one, the
//     version required, "v0.1.0"; a module replaced by a directory, as by
//     --with Path=../clone, is "(devel)", since the version named is not
//     what was built;
//   - built as the main module from a checkout, what Go made of the checkout
//     with -buildvcs=true: the tag of the commit, "v0.1.0", or a
//     pseudo-version naming the commit, "v0.1.1-0.20261207211814-53bf6aad2534",
//     with "+dirty" when the checkout had uncommitted changes;
//   - built from a checkout that Go recorded no version of: "(devel)", then
//     the commit's first 12 hex digits if Go recorded it, and "+dirty":
//     "(devel) 53bf6aad2534+dirty".
//
// It returns "unknown" when bi is nil or does not hold the module.
func Of(bi *debug.BuildInfo) string {
	if bi == nil {
		return "unknown"
	}
	if bi.Main.Path == Path {
		return mainVersion(bi)
	}
	for _, m := range bi.Deps {
		if m.Path != Path {
			continue
		}
		if m.Replace != nil {
			m = m.Replace
		}
		if m.Version == "" {
			return devel
		}
		return m.Version
	}
	return "unknown"
}

// mainVersion is the version of the main module bi records, the commit
// added to "(devel)".
func mainVersion(bi *debug.BuildInfo) string {
	if bi.Main.Version != "" && bi.Main.Version != devel {
		return bi.Main.Version
	}
	var revision, dirty string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			revision = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "+dirty"
			}
		}
	}
	if revision == "" {
		return devel
	}
	return devel + " " + revision[:min(12, len(revision))] + dirty
}
