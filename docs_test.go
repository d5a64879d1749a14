package smsrecovery

import (
	"bufio"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode"
)

// The README's commands a newcomer types first: the test command is also the
// one .ci/run and docs/development.md give.
const (
	demoCommand = "go run ./cmd/caddy run --config examples/Caddyfile"
	testCommand = "go run ./internal/testenv/run -race ./... ./cmd/recovery-load/..."
)

// TestReadmeLayout checks the README's layout table against the tree: every
// folder that holds Go files has its row, and every row names a folder or
// file that exists.
func TestReadmeLayout(t *testing.T) {
	t.Parallel()
	rows := layoutRows(t, "README.md")
	named := map[string]bool{}
	for _, row := range rows {
		if named[row] {
			t.Errorf("README.md layout: %s has two rows", row)
		}
		named[row] = true
		info, err := os.Stat(filepath.FromSlash(strings.TrimSuffix(row, "/")))
		switch {
		case err != nil:
			t.Errorf("README.md layout names %s, which does not exist", row)
		case strings.HasSuffix(row, "/") != info.IsDir():
			t.Errorf("README.md layout: %s is written as a folder (trailing /) only if it is one", row)
		}
	}
	for _, dir := range goDirs(t) {
		if dir == "." {
			if !slices.ContainsFunc(rows, func(r string) bool { return !strings.Contains(r, "/") }) {
				t.Errorf("README.md layout has no row for the Go files at the root")
			}
			continue
		}
		if !named[dir+"/"] {
			t.Errorf("README.md layout has no row for %s/, which holds Go files", dir)
		}
	}
}

// TestDocLinks checks that every relative link and image of README.md and
// docs/*.md reaches a file or folder of the repository, and that each
// #fragment names a heading of the Markdown file it points into.
func TestDocLinks(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("docs/*.md")
	if err != nil {
		t.Fatal(err)
	}
	files = append([]string{"README.md"}, files...)
	anchors := map[string]map[string]bool{}
	anchorsOf := func(file string) map[string]bool {
		if a, ok := anchors[file]; ok {
			return a
		}
		a := headingAnchors(t, file)
		anchors[file] = a
		return a
	}
	for _, file := range files {
		for _, l := range markdownLinks(t, file) {
			target, fragment, _ := strings.Cut(l.target, "#")
			if target == "" && fragment == "" {
				t.Errorf("%s:%d: empty link", file, l.line)
				continue
			}
			resolved := file
			if target != "" {
				resolved = path.Join(path.Dir(filepath.ToSlash(file)), target)
				if _, err := os.Stat(filepath.FromSlash(resolved)); err != nil {
					t.Errorf("%s:%d: link to %s: %s does not exist", file, l.line, l.target, resolved)
					continue
				}
			}
			if fragment == "" {
				continue
			}
			if !strings.HasSuffix(resolved, ".md") {
				t.Errorf("%s:%d: link to %s: a fragment on a file that is not Markdown", file, l.line, l.target)
				continue
			}
			if !anchorsOf(resolved)[fragment] {
				t.Errorf("%s:%d: link to %s: %s has no heading #%s", file, l.line, l.target, resolved, fragment)
			}
		}
	}
}

// TestReadmeCommands checks that the README gives the two commands a
// newcomer runs first, that CI and the development guide run the same test
// command, and that no test's name or benchmark figure is left in the
// README's prose: those belong to docs/security.md and docs/performance.md.
func TestReadmeCommands(t *testing.T) {
	t.Parallel()
	readme := readText(t, "README.md")
	for _, cmd := range []string{demoCommand, testCommand} {
		if !strings.Contains(readme, cmd) {
			t.Errorf("README.md does not give the command %q", cmd)
		}
	}
	for _, file := range []string{".ci/run", "docs/development.md"} {
		if !strings.Contains(readText(t, file), testCommand) {
			t.Errorf("%s does not run the README's test command %q", file, testCommand)
		}
	}
	for _, re := range []*regexp.Regexp{
		regexp.MustCompile(`\b(Test|Benchmark|Fuzz|Example)[A-Z][A-Za-z0-9_]*`),
		regexp.MustCompile(`\b[0-9.]+ ?(ns|µs|B|allocs)/op\b`),
	} {
		for _, m := range re.FindAllString(readme, -1) {
			t.Errorf("README.md names %q: keep test names and benchmark figures in docs/", m)
		}
	}
}

// layoutRows returns the first cell of each row of the table under the
// "## Layout" heading, without its backquotes.
func layoutRows(t *testing.T, file string) []string {
	t.Helper()
	var rows []string
	in := false
	for _, line := range strings.Split(readText(t, file), "\n") {
		if strings.HasPrefix(line, "## ") {
			in = line == "## Layout"
			continue
		}
		if !in || !strings.HasPrefix(line, "| `") {
			continue
		}
		cell, _, _ := strings.Cut(strings.TrimPrefix(line, "| "), " |")
		rows = append(rows, strings.Trim(cell, "`"))
	}
	if len(rows) == 0 {
		t.Fatalf("%s has no layout table under ## Layout", file)
	}
	return rows
}

// goDirs lists, slash-separated, the folders that hold .go files, skipping
// what the go command skips: testdata, and names starting with . or _.
func goDirs(t *testing.T) []string {
	t.Helper()
	var dirs []string
	err := filepath.WalkDir(".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if p != "." && (name == "testdata" || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_")) {
				return filepath.SkipDir
			}
			return nil
		}
		if strings.HasSuffix(name, ".go") {
			dir := filepath.ToSlash(filepath.Dir(p))
			if !slices.Contains(dirs, dir) {
				dirs = append(dirs, dir)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return dirs
}

type link struct {
	line   int
	target string
}

var (
	inlineLink = regexp.MustCompile(`\]\(([^()\s]+)\)`)
	codeSpan   = regexp.MustCompile("`[^`]*`")
)

// markdownLinks returns the relative targets of a Markdown file's inline
// links and images, outside fenced code blocks and code spans.
func markdownLinks(t *testing.T, file string) []link {
	t.Helper()
	var links []link
	fenced := false
	sc := bufio.NewScanner(strings.NewReader(readText(t, file)))
	sc.Buffer(nil, 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if strings.HasPrefix(strings.TrimSpace(line), "```") {
			fenced = !fenced
			continue
		}
		if fenced {
			continue
		}
		line = codeSpan.ReplaceAllString(line, "``")
		for _, m := range inlineLink.FindAllStringSubmatch(line, -1) {
			target := m[1]
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			links = append(links, link{n, target})
		}
	}
	return links
}

// headingAnchors returns the fragments GitHub gives the headings of a
// Markdown file: lower case, punctuation dropped, spaces as hyphens, and
// -1, -2, … after a repeated one.
func headingAnchors(t *testing.T, file string) map[string]bool {
	t.Helper()
	anchors := map[string]bool{}
	seen := map[string]int{}
	fenced := false
	for _, line := range strings.Split(readText(t, file), "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "```") {
			fenced = !fenced
			continue
		}
		if fenced || !strings.HasPrefix(line, "#") {
			continue
		}
		text := strings.TrimSpace(strings.TrimLeft(line, "#"))
		var b strings.Builder
		for _, r := range strings.ToLower(text) {
			switch {
			case unicode.IsLetter(r), unicode.IsDigit(r), r == '-', r == '_':
				b.WriteRune(r)
			case r == ' ':
				b.WriteRune('-')
			}
		}
		slug := b.String()
		if n := seen[slug]; n > 0 {
			anchors[slug+"-"+strconv.Itoa(n)] = true
		} else {
			anchors[slug] = true
		}
		seen[slug]++
	}
	return anchors
}

func readText(t *testing.T, file string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.FromSlash(file))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
