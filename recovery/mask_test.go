package recovery

import "testing"

func TestMaskPhone(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"+31612345678":   "+31*****678",
		"+4915123456789": "+49*****789",
		" +14155550123 ": "+14*****123",
		"+3161":          "*****",
		"":               "*****",
	} {
		if got := MaskPhone(in); got != want {
			t.Errorf("MaskPhone(%q) = %q, want %q", in, got, want)
		}
	}
}
