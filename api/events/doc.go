// Package events is Canopy's event wire contract: topic names, CloudEvents
// types and sources, consumer group names and the JSON payload of every event,
// hand-written and tested against the JSON Schemas next to it
// (api/events/<ce_type>.schema.json). Producers and consumers share it the way
// protobuf code is shared. It is not a domain model: each service maps these
// types to its own domain types at the edge. Changes within a topic version are
// additive only; names are never derived from Go type names.
package events
