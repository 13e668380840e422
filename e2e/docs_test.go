package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestArchitectureListsEveryLib keeps the libraries table of
// docs/architecture.md in step with libs/: every package directory directly
// under libs/ must have a row (its name in backquotes at the start of a row).
func TestArchitectureListsEveryLib(t *testing.T) {
	root := repoRoot(t)
	doc, err := os.ReadFile(filepath.Join(root, "docs", "architecture.md"))
	if err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(filepath.Join(root, "libs"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		gofiles, _ := filepath.Glob(filepath.Join(root, "libs", e.Name(), "*.go"))
		if len(gofiles) == 0 {
			continue
		}
		if !strings.Contains(string(doc), "\n| `"+e.Name()+"` |") {
			t.Errorf("docs/architecture.md has no row for libs/%s in its libraries table", e.Name())
		}
	}
}
