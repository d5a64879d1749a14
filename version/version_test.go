package version

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestVersionInChangelog keeps the constant and the changelog together: the
// newest released entry of CHANGELOG.md is this version, and the version is
// a v0.x.y or later semantic version.
func TestVersionInChangelog(t *testing.T) {
	if !regexp.MustCompile(`^v\d+\.\d+\.\d+$`).MatchString(Version) {
		t.Fatalf("Version %q is not vMAJOR.MINOR.PATCH", Version)
	}
	b, err := os.ReadFile("../CHANGELOG.md")
	if err != nil {
		t.Fatal(err)
	}
	heading := regexp.MustCompile(`(?m)^## \[([^\]]+)\]`)
	var released []string
	for _, m := range heading.FindAllStringSubmatch(string(b), -1) {
		if m[1] != "Unreleased" {
			released = append(released, m[1])
		}
	}
	if len(released) == 0 {
		t.Fatal("CHANGELOG.md has no released version")
	}
	if want := strings.TrimPrefix(Version, "v"); released[0] != want {
		t.Errorf("newest release in CHANGELOG.md is %s, want %s (the Version constant)", released[0], want)
	}
}
