package messagebird

import "testing"

func TestPlatformRegion(t *testing.T) {
	t.Parallel()
	tests := []struct{ key, want string }{
		{testBirdKey, "eu1"},
		{"bk_us1_x", "us1"},
		{"bk_ap12_Ab3_x-y", "ap12"},
		{testAccessKey, ""},
		{"live_Ab3xKq9mP2wR5tY8uI1oL4nJ", ""},
		{"bk_eu1_", ""},
		{"bk_EU1_Ab3x", ""},
		{"bk_europe_Ab3x", ""},
		{"bk_eu_Ab3x", ""},
		{"bk_Ab3xKq9mP2wR5tY8uI1oL4nJ", ""},
		{"BK_eu1_Ab3x", ""},
	}
	for _, tt := range tests {
		if got := platformRegion(tt.key); got != tt.want {
			t.Errorf("platformRegion(%q) = %q, want %q", tt.key, got, tt.want)
		}
	}
}
