package launch

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// skeletonBlock is a Go block of docs/new-service.md with the file it shows.
var skeletonBlock = regexp.MustCompile("(?s)<!-- skeleton: services/widget/(\\S+) -->\n```go\n(.*?)```")

// TestNewServiceDocMatchesSkeleton: the skeleton docs/new-service.md shows is
// internal/widget, which is compiled, vetted and run; only its import path
// differs, as it would in a copy under services/.
func TestNewServiceDocMatchesSkeleton(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "new-service.md"))
	if err != nil {
		t.Fatalf("read the doc: %v", err)
	}
	blocks := skeletonBlock.FindAllStringSubmatch(string(doc), -1)
	if len(blocks) < 3 {
		t.Fatalf("docs/new-service.md shows %d skeleton files, want widget.go, cmd/widget/main.go and migrations/migrations.go", len(blocks))
	}
	for _, b := range blocks {
		file, shown := b[1], b[2]
		code, err := os.ReadFile(filepath.Join("internal", "widget", filepath.FromSlash(file)))
		if err != nil {
			t.Errorf("docs/new-service.md shows %s, which the skeleton lacks: %v", file, err)
			continue
		}
		want := strings.ReplaceAll(string(code), "github.com/canopy-platform/canopy/libs/launch/internal/widget", "github.com/canopy-platform/canopy/services/widget")
		if shown != want {
			t.Errorf("docs/new-service.md shows a %s that differs from internal/widget/%s; update the doc from the code", file, file)
		}
	}
}
