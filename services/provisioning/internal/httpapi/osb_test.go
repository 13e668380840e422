package httpapi

import (
	"strings"
	"testing"

	"github.com/canopy-platform/canopy/services/provisioning/internal/instance"
)

// TestOSBName: every OSB id maps to a valid Canopy name, and ids that
// differ (even only in case) map to different names, since OSB ids compare
// exactly and a shared name would make the second provision a conflict.
func TestOSBName(t *testing.T) {
	long := strings.Repeat("a", 80)
	tests := []struct {
		name string
		ids  []string
	}{
		{"case", []string{"ABC", "abc", "Abc"}},
		{"punctuation", []string{"a.b", "a_b", "a-b"}},
		{"long ids sharing a prefix", []string{long + "1", long + "2"}},
		{"no letters or digits", []string{"...", "___"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			seen := map[string]string{}
			for _, id := range tt.ids {
				n := osbName(id)
				if err := instance.ValidateName(n); err != nil {
					t.Errorf("osbName(%q) = %q: %v", id, n, err)
				}
				if other, dup := seen[n]; dup {
					t.Errorf("osbName(%q) = osbName(%q) = %q", id, other, n)
				}
				seen[n] = id
			}
		})
	}
	if got := osbName("5a0e5f0c-8a4e-4a45"); got != "osb-5a0e5f0c-8a4e-4a45" {
		t.Errorf("a lower-case GUID keeps its readable name, got %q", got)
	}
}
