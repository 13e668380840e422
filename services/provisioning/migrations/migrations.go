// Package migrations holds provisioning's numbered SQL migrations for the
// canopy_provisioning database, embedded for store.DB.Migrate.
package migrations

import "embed"

// FS holds the NNNN_name.up.sql files.
//
//go:embed *.sql
var FS embed.FS
