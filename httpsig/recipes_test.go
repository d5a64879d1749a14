package httpsig

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"
)

// TestUpstreamRecipes runs the Python and PHP recipes of docs/upstream.md,
// exactly as printed there, against testdata/vectors.json, so that the page
// cannot drift from the vectors. It skips a language whose interpreter or
// crypto library is missing.
func TestUpstreamRecipes(t *testing.T) {
	t.Parallel()
	md, err := os.ReadFile("../docs/upstream.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```(python|php)\n(.*?)```").FindAllSubmatch(md, -1)
	code := map[string][]string{}
	for _, b := range blocks {
		code[string(b[1])] = append(code[string(b[1])], string(b[2]))
	}
	vectors, err := filepath.Abs(vectorsPath)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		lang, interpreter, verify, check string
		probe                            []string
		library, install                 string
	}{
		{"python", "python3", "verify.py", "check.py", []string{"-c", "import cryptography"},
			"the cryptography package", "apt-get install python3-cryptography, or pip install cryptography"},
		{"php", "php", "verify.php", "check.php", []string{"-r", "exit(function_exists('sodium_crypto_sign_verify_detached') ? 0 : 1);"},
			"sodium", "apt-get install php-cli, which has it built in"},
	}
	for _, tt := range tests {
		t.Run(tt.lang, func(t *testing.T) {
			t.Parallel()
			if len(code[tt.lang]) != 2 {
				t.Fatalf("docs/upstream.md has %d %s blocks, want the recipe and its check", len(code[tt.lang]), tt.lang)
			}
			if err := exec.Command(tt.interpreter, tt.probe...).Run(); err != nil {
				t.Skipf("skipped: needs %s with %s: %s (%v)", tt.interpreter, tt.library, tt.install, err)
			}
			dir := t.TempDir()
			for i, name := range []string{tt.verify, tt.check} {
				if err := os.WriteFile(filepath.Join(dir, name), []byte(code[tt.lang][i]), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			cmd := exec.Command(tt.interpreter, tt.check, vectors)
			cmd.Dir = dir
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Errorf("%s %s: %v\n%s", tt.interpreter, tt.check, err, out)
			}
		})
	}
}
