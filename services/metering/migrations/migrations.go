// Package migrations holds the metering service's numbered SQL migrations,
// embedded for store.DB.Migrate.
package migrations

import "embed"

// FS holds the NNNN_name.up.sql files.
//
//go:embed *.sql
var FS embed.FS
