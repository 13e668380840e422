// Package migrations holds the catalog's numbered SQL migrations for the
// canopy_catalog database, embedded for store.DB.Migrate.
package migrations

import "embed"

// FS holds the NNNN_name.up.sql files.
//
//go:embed *.sql
var FS embed.FS
