package analysis

import (
	"os"
	"strings"
	"testing"
)

// TestFailoverDocShowsTheTable keeps docs/failover.md's table of problem
// codes the one the analysis runs (CANOPY_UPDATE_DOCS=1 rewrites it).
func TestFailoverDocShowsTheTable(t *testing.T) {
	const path = "../../../../docs/failover.md"
	const begin, end = "<!-- problem-table: begin -->\n", "<!-- problem-table: end -->"
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	i, j := strings.Index(doc, begin), strings.Index(doc, end)
	if i < 0 || j < i {
		t.Fatalf("%s has no %q … %q block", path, begin, end)
	}
	want := Markdown()
	if got := doc[i+len(begin) : j]; got != want {
		if os.Getenv("CANOPY_UPDATE_DOCS") == "1" {
			if err := os.WriteFile(path, []byte(doc[:i+len(begin)]+want+doc[j:]), 0o644); err != nil {
				t.Fatal(err)
			}
			return
		}
		t.Errorf("the problem table in %s is not the analysis's; rerun with CANOPY_UPDATE_DOCS=1. Want:\n%s", path, want)
	}
}
