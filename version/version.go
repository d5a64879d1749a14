// Package version names the release of caddy-sms-recovery. The module
// reports it on GET <path_prefix>/healthz, in the log when a handler is
// provisioned, and as the metric caddy_sms_recovery_build_info.
package version

// Version is the release, in semantic versioning with a leading v. Raise it
// with each release, together with the CHANGELOG.md entry of that version.
const Version = "v0.1.0"
