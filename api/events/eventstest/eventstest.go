// Package eventstest validates event payloads against the JSON Schemas of
// package events, so producers' and consumers' tests check the bytes that
// really travel. It is for tests only; production code never imports it.
package eventstest

import (
	"bytes"
	"fmt"
	"io/fs"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/canopy-platform/canopy/api/events"
)

// base is where the embedded schemas are mounted for the compiler; the
// schemas' relative $id and $ref resolve against it. Nothing is fetched.
const base = "https://schemas.canopy.invalid/events/"

// Validator holds the compiled schema of every event type.
type Validator struct {
	schemas map[string]*jsonschema.Schema
}

// New compiles every schema in events.Schemas. Formats (date-time, uuid)
// are asserted, not only annotated.
func New() (*Validator, error) {
	files, err := fs.Glob(events.Schemas(), "*.schema.json")
	if err != nil {
		return nil, fmt.Errorf("list schemas: %w", err)
	}
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	for _, name := range files {
		raw, err := fs.ReadFile(events.Schemas(), name)
		if err != nil {
			return nil, fmt.Errorf("read schema %s: %w", name, err)
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
		if err != nil {
			return nil, fmt.Errorf("parse schema %s: %w", name, err)
		}
		if err := c.AddResource(base+name, doc); err != nil {
			return nil, fmt.Errorf("add schema %s: %w", name, err)
		}
	}
	v := &Validator{schemas: make(map[string]*jsonschema.Schema, len(files))}
	for _, name := range files {
		s, err := c.Compile(base + name)
		if err != nil {
			return nil, fmt.Errorf("compile schema %s: %w", name, err)
		}
		v.schemas[strings.TrimSuffix(name, ".schema.json")] = s
	}
	return v, nil
}

// MustNew is New that fails the test on error.
func MustNew(t testing.TB) *Validator {
	t.Helper()
	v, err := New()
	if err != nil {
		t.Fatalf("event schemas: %v", err)
	}
	return v
}

// Schema returns the compiled schema named typ (a ce_type, or an aggregate
// such as provisioning.instance), or nil when there is none.
func (v *Validator) Schema(typ string) *jsonschema.Schema { return v.schemas[typ] }

// Validate reports whether data, an event's JSON payload, matches the
// schema of event type typ. A type without a schema is an error: every
// published type must have one.
func (v *Validator) Validate(typ string, data []byte) error {
	s, ok := v.schemas[typ]
	if !ok {
		return fmt.Errorf("event type %q has no schema in api/events", typ)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		return fmt.Errorf("%s payload is not JSON: %w", typ, err)
	}
	if err := s.Validate(inst); err != nil {
		return fmt.Errorf("%s payload does not match %s: %w; data %s", typ, events.SchemaFile(typ), err, data)
	}
	return nil
}
