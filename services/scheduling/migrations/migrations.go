// Package migrations embeds the scheduling database schema (numbered
// NNNN_name.up.sql files, applied by store.DB.Migrate).
package migrations

import "embed"

// FS holds the migration files.
//
//go:embed *.sql
var FS embed.FS
