package sqldb

import (
	"errors"
	"strings"
	"testing"
)

// TestCheckUpdate checks the two-parameter UPDATE of the password writer;
// the one-parameter SELECT of the directory has its table in directory/sql.
func TestCheckUpdate(t *testing.T) {
	t.Parallel()
	st := Statement{Verb: "update", Params: []string{"the hash", "the account"}}
	tests := []struct {
		driver, query string
		want          string // "" for a query that is fine
	}{
		{"postgres", "UPDATE users SET password = $1 WHERE username = $2", ""},
		{"postgres", "update users set password = $1, changed = now() where username = $2 or alias = $2;", ""},
		{"postgres", "UPDATE users SET password = $1 WHERE username = lower($2) AND active", ""},
		{"mysql", "UPDATE mailbox SET password = ?, modified = NOW() WHERE username = ?", ""},

		{"postgres", "UPDATE users SET password = $1 WHERE username = 'alice'", "no parameter $2 for the account"},
		{"postgres", "UPDATE users SET password = 'x' WHERE username = $2", "no parameter $1 for the hash"},
		{"postgres", "UPDATE users SET password = $1 WHERE username = $2 AND domain = $3", "parameter $3"},
		{"postgres", "UPDATE users SET password = ? WHERE username = ?", "no parameter $1"},
		{"mysql", "UPDATE users SET password = ? WHERE username = ? OR alias = ?", "3 parameters"},
		{"mysql", "UPDATE users SET password = ? WHERE username = 'alice'", "1 parameters"},
		{"mysql", "UPDATE users SET password = $1 WHERE username = $2", "no parameter ?"},
		{"postgres", "SELECT password FROM users WHERE username = $2 AND $1 = $1", "single UPDATE"},
		{"postgres", "DELETE FROM users WHERE password = $1 OR username = $2", "single UPDATE"},
		{"postgres", "WITH x AS (DELETE FROM users RETURNING *) UPDATE users SET password = $1 WHERE username = $2", "single UPDATE"},
		{"postgres", "UPDATE users SET password = $1 WHERE username = $2; DROP TABLE users", "single statement"},
		{"mysql", "UPDATE users SET password = ? WHERE username = ? -- x", "no comment"},
		{"mysql", "UPDATE users SET password = ? WHERE username = ? # x", "no comment"},
		{"postgres", "UPDATE users SET password = $1 WHERE username = $2 AND x = $$a$$", "dollar-quoted"},
		{"postgres", "", "no query"},
		{"sqlite", "UPDATE users SET password = ? WHERE username = ?", "unknown driver"},
	}
	for _, tt := range tests {
		err := st.Check(tt.driver, tt.query)
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("Check(%s, %q) = %v, want nil", tt.driver, tt.query, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("Check(%s, %q) = %v, want an error containing %q", tt.driver, tt.query, err, tt.want)
		}
	}
}

func TestOpenRefuses(t *testing.T) {
	t.Parallel()
	tests := []struct{ driver, dsn, want string }{
		{"", "x", "no driver"},
		{"sqlite", "x", `unknown driver "sqlite"`},
		{"postgres", "postgres://u:s3cret-pw@h:notaport/db", "postgres dsn does not parse"},
		{"mysql", "u:s3cret-pw@tcp(h", "mysql dsn does not parse"},
		{"postgres", "postgres://u:s3cret-pw@h/db?default_query_exec_mode=simple_protocol", "simple_protocol"},
	}
	for _, tt := range tests {
		db, err := Open(tt.driver, tt.dsn, Pool{})
		if err == nil {
			db.Close()
		}
		if err == nil || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "s3cret-pw") {
			t.Errorf("Open(%q, %q) = %v, want an error containing %q and no password", tt.driver, tt.dsn, err, tt.want)
		}
	}
}

func TestScrub(t *testing.T) {
	t.Parallel()
	for driver, dsn := range map[string]string{
		"postgres": "postgres://u:s3cret-pw@127.0.0.1/db",
		"mysql":    "u:s3cret-pw@tcp(127.0.0.1)/db",
	} {
		db, err := Open(driver, dsn, Pool{})
		if err != nil {
			t.Fatal(err)
		}
		got := db.Scrub(errors.New("login u:s3cret-pw for alice with {X}hash"), "alice", "<account>", "{X}hash", "<hash>", "", "<empty>").Error()
		if want := "login u:xxxxx for <account> with <hash>"; got != want {
			t.Errorf("%s: Scrub = %q, want %q", driver, got, want)
		}
		db.Close()
	}
}
