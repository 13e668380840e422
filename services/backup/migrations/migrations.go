// Package migrations holds the backup database's schema.
package migrations

import "embed"

// FS holds the NNNN_name.up.sql files.
//
//go:embed *.sql
var FS embed.FS
