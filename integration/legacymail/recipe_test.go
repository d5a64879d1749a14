package legacymail

import (
	"os"
	"path/filepath"
	"regexp"
	"testing"
)

// TestEndpointRunsTheDocumentedRecipe keeps the example honest: its PHP
// verifier is the recipe of docs/upstream.md, character for character, and
// that recipe is checked against the published test vectors by package
// httpsig. This test needs no Dovecot or PHP.
func TestEndpointRunsTheDocumentedRecipe(t *testing.T) {
	md, err := os.ReadFile(filepath.Join(root, "docs", "upstream.md"))
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```php\n(.*?)```").FindAllSubmatch(md, -1)
	if len(blocks) == 0 {
		t.Fatal("docs/upstream.md has no PHP recipe")
	}
	lib, err := os.ReadFile(filepath.Join(root, "examples", "legacy-mail", "webmail", "plugins", "sms_password_reset", "lib", "verify.php"))
	if err != nil {
		t.Fatal(err)
	}
	if string(lib) != string(blocks[0][1]) {
		t.Error("examples/legacy-mail/webmail/plugins/sms_password_reset/lib/verify.php differs from the first PHP block of docs/upstream.md; copy the recipe over")
	}
}
