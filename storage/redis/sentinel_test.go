package redisstore

import "testing"

// TestMajority: a master is named only by more than half of the sentinels
// asked; one that did not answer counts against it.
func TestMajority(t *testing.T) {
	for _, c := range []struct {
		names []string
		want  string
	}{
		{[]string{"a:1"}, "a:1"},
		{[]string{""}, ""},
		{[]string{"a:1", "b:1", "a:1"}, "a:1"},
		{[]string{"a:1", "", "b:1"}, ""},
		{[]string{"a:1", "", ""}, ""},
		{[]string{"a:1", "a:1", "b:1", "b:1"}, ""},
		{[]string{"b:1", "a:1", "a:1", "a:1"}, "a:1"},
	} {
		got, ok := majority(c.names)
		if got != c.want || ok != (c.want != "") {
			t.Errorf("majority(%q) = %q, %v; want %q", c.names, got, ok, c.want)
		}
	}
}
