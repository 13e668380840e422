// Temporary: replaced at merge.
package snapshot

import (
	"context"

	"github.com/canopy-platform/canopy/services/cdc/internal/capture"
	"github.com/canopy-platform/canopy/services/cdc/internal/change"
)

// Progress is a snapshot's progress.
type Progress struct {
	GTID   string
	Tables []TableProgress
}

// TableProgress is one table's progress.
type TableProgress struct {
	Name    string
	Done    bool
	LastKey []any
	Rows    int64
}

// Config configures a snapshot.
type Config struct {
	Source    capture.Source
	Prefix    string
	Include   func(db, table string) bool
	ChunkSize int
}

// Run runs a snapshot.
func Run(ctx context.Context, cfg Config, resume *Progress, out chan<- change.Batch) (Progress, error) {
	return Progress{}, nil
}
