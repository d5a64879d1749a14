package version

import (
	"os"
	"regexp"
	"runtime/debug"
	"strings"
	"testing"

	"golang.org/x/mod/semver"
)

func TestOf(t *testing.T) {
	const rev = "53bf6aad2534c6d7b92eeab86657b9a6ff045e76"
	vcs := func(modified string) []debug.BuildSetting {
		return []debug.BuildSetting{{Key: "vcs", Value: "git"}, {Key: "vcs.revision", Value: rev},
			{Key: "vcs.time", Value: "2026-12-07T21:18:14Z"}, {Key: "vcs.modified", Value: modified}}
	}
	caddy := debug.Module{Path: "github.com/caddyserver/caddy/v2", Version: "v2.11.9"}
	xcaddy := func(m *debug.Module) *debug.BuildInfo {
		return &debug.BuildInfo{Main: debug.Module{Path: "caddy", Version: devel}, Deps: []*debug.Module{&caddy, m}}
	}
	tests := []struct {
		name string
		bi   *debug.BuildInfo
		want string
	}{
		{"no build information", nil, "unknown"},
		{"a program without the module", xcaddy(&caddy), "unknown"},
		{"xcaddy, a release", xcaddy(&debug.Module{Path: Path, Version: "v0.2.0"}), "v0.2.0"},
		{"xcaddy, a commit", xcaddy(&debug.Module{Path: Path, Version: "v0.2.1-0.20261207211814-53bf6aad2534"}),
			"v0.2.1-0.20261207211814-53bf6aad2534"},
		{"xcaddy, replaced by a directory", xcaddy(&debug.Module{Path: Path, Version: "v0.1.0",
			Replace: &debug.Module{Path: "/home/me/caddy-sms-recovery"}}), devel},
		{"xcaddy, replaced by a fork", xcaddy(&debug.Module{Path: Path, Version: "v0.1.0",
			Replace: &debug.Module{Path: "example.com/fork", Version: "v0.1.1"}}), "v0.1.1"},
		{"main module, the tag Go found", &debug.BuildInfo{Main: debug.Module{Path: Path, Version: "v0.2.0"}, Settings: vcs("false")},
			"v0.2.0"},
		{"main module, a pseudo-version of a modified checkout",
			&debug.BuildInfo{Main: debug.Module{Path: Path, Version: "v0.0.0-20261207211814-53bf6aad2534+dirty"}, Settings: vcs("true")},
			"v0.0.0-20261207211814-53bf6aad2534+dirty"},
		{"main module, no VCS information", &debug.BuildInfo{Main: debug.Module{Path: Path, Version: devel}}, devel},
		{"main module, no version", &debug.BuildInfo{Main: debug.Module{Path: Path}}, devel},
		{"main module, the commit", &debug.BuildInfo{Main: debug.Module{Path: Path, Version: devel}, Settings: vcs("false")},
			"(devel) 53bf6aad2534"},
		{"main module, the commit, modified", &debug.BuildInfo{Main: debug.Module{Path: Path, Version: devel}, Settings: vcs("true")},
			"(devel) 53bf6aad2534+dirty"},
		{"main module, a short revision", &debug.BuildInfo{Main: debug.Module{Path: Path, Version: devel},
			Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "1a2b"}}}, "(devel) 1a2b"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Of(tt.bi); got != tt.want {
				t.Errorf("Of() = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestVersionOfThisBinary: a test binary is the module built from its
// directory, which go test stamps with no version or commit.
func TestVersionOfThisBinary(t *testing.T) {
	if Version != devel {
		t.Errorf("Version = %q in a test binary, want %q", Version, devel)
	}
}

// TestChangelogReleases keeps CHANGELOG.md's claims checkable: the
// unreleased section comes first, each release below it has a date and
// is older than the one above it, and each heading has its link, the
// unreleased one comparing the newest release with HEAD.
func TestChangelogReleases(t *testing.T) {
	b, err := os.ReadFile("../CHANGELOG.md")
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	headings := regexp.MustCompile(`(?m)^## \[([^\]]+)\](.*)$`).FindAllStringSubmatch(text, -1)
	if len(headings) == 0 || headings[0][1] != "Unreleased" || headings[0][2] != "" {
		t.Fatalf("the first heading of CHANGELOG.md is not \"## [Unreleased]\": %q", headings)
	}
	release := regexp.MustCompile(`^(\d+)\.(\d+)\.(\d+)$`)
	prev := ""
	for _, h := range headings[1:] {
		name, rest := h[1], h[2]
		if !release.MatchString(name) || !regexp.MustCompile(`^ - \d{4}-\d{2}-\d{2}$`).MatchString(rest) {
			t.Errorf("heading %q is not \"## [MAJOR.MINOR.PATCH] - YYYY-MM-DD\"", h[0])
		}
		if prev != "" && semver.Compare("v"+name, "v"+prev) >= 0 {
			t.Errorf("release %s is listed below %s, which is not newer", name, prev)
		}
		prev = name
		link := "\n[" + name + "]: https://github.com/caddy-sms-recovery/caddy-sms-recovery/releases/tag/v" + name + "\n"
		if !strings.Contains(text, link) {
			t.Errorf("CHANGELOG.md lacks the link %q", strings.TrimSpace(link))
		}
	}
	if len(headings) > 1 {
		link := "\n[Unreleased]: https://github.com/caddy-sms-recovery/caddy-sms-recovery/compare/v" + headings[1][1] + "...HEAD\n"
		if !strings.Contains(text, link) {
			t.Errorf("CHANGELOG.md lacks the link %q", strings.TrimSpace(link))
		}
	}
}
