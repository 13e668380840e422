package events

import (
	"embed"
	"io/fs"
)

// The schemas travel with the package so every module's tests validate
// against the same files wherever the module cache puts them.
//
//go:embed *.schema.json
var schemaFiles embed.FS

// Schemas returns the JSON Schemas of the payloads, one file per ce_type
// named <ce_type>.schema.json, plus the shared aggregate schemas they $ref.
func Schemas() fs.FS { return schemaFiles }

// SchemaFile is the name of the schema file of event type typ within Schemas.
func SchemaFile(typ string) string { return typ + ".schema.json" }
