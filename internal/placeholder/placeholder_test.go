package placeholder

import (
	"strings"
	"testing"
)

func TestExpand(t *testing.T) {
	t.Setenv("PLACEHOLDER_TEST_SET", "s3cret")
	t.Setenv("PLACEHOLDER_TEST_EMPTY", "")
	cases := []struct {
		name, in, want, err string
	}{
		{"plain value", "abc", "abc", ""},
		{"nothing", "", "", ""},
		{"set variable", "{env.PLACEHOLDER_TEST_SET}", "s3cret", ""},
		{"inside a url", "redis://:{env.PLACEHOLDER_TEST_SET}@host", "redis://:s3cret@host", ""},
		{"unset variable", "{env.PLACEHOLDER_TEST_UNSET}", "", "secret: placeholder {env.PLACEHOLDER_TEST_UNSET} is empty"},
		{"empty variable", "{env.PLACEHOLDER_TEST_EMPTY}", "", "secret: placeholder {env.PLACEHOLDER_TEST_EMPTY} is empty"},
		{"empty part of a url", "redis://{env.PLACEHOLDER_TEST_UNSET}:6379", "", "placeholder {env.PLACEHOLDER_TEST_UNSET} is empty"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := c.in
			err := Expand(nil, "secret", &s)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("Expand(%q) = %v, want an error containing %q", c.in, err, c.err)
				}
				if strings.Contains(err.Error(), "s3cret") {
					t.Fatalf("the error shows a value: %v", err)
				}
				return
			}
			if err != nil || s != c.want {
				t.Fatalf("Expand(%q) = %q, %v; want %q", c.in, s, err, c.want)
			}
		})
	}
}
