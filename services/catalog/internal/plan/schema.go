package plan

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// MaxSchemaBytes bounds a parameter schema, as OSB 2.17 requires (64 kB).
const MaxSchemaBytes = 64 * 1024

// DefaultSchemaDialect is the $schema given to parameter schemas that name
// none: draft-04 is the minimum every OSB platform understands.
const DefaultSchemaDialect = "http://json-schema.org/draft-04/schema#"

// schemaURL is the in-memory location a parameter schema is compiled at;
// relative $refs resolve against it and are refused by noLoader.
const schemaURL = "canopy:///catalog/parameters.json"

// ErrExternalRef is returned for a schema that refers to another document.
var ErrExternalRef = errors.New("external $ref is not allowed")

// noLoader refuses every external document: OSB forbids external references
// and the catalog must never fetch URLs named by its input.
type noLoader struct{}

func (noLoader) Load(url string) (any, error) { return nil, fmt.Errorf("%w: %s", ErrExternalRef, url) }

// CompileSchema checks raw as a plan parameter schema and compiles it: a
// JSON object of at most MaxSchemaBytes, a valid JSON Schema (draft-04 when
// it names no $schema) describing an object, with no external references.
func CompileSchema(raw json.RawMessage) (*jsonschema.Schema, error) {
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil, errors.New("is required")
	}
	if len(raw) > MaxSchemaBytes {
		return nil, fmt.Errorf("is %d bytes; at most %d are allowed", len(raw), MaxSchemaBytes)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("is not valid JSON: %w", err)
	}
	obj, ok := doc.(map[string]any)
	if !ok {
		return nil, errors.New("must be a JSON object")
	}
	if t, ok := obj["type"]; !ok || t != "object" {
		return nil, errors.New(`must describe an object ("type": "object")`)
	}
	if s, ok := obj["$schema"]; ok {
		if _, isString := s.(string); !isString {
			return nil, errors.New("$schema must be a string")
		}
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft4)
	c.UseLoader(noLoader{})
	if err := c.AddResource(schemaURL, doc); err != nil {
		return nil, fmt.Errorf("is not a valid JSON Schema: %w", err)
	}
	sch, err := c.Compile(schemaURL)
	if err != nil {
		return nil, fmt.Errorf("is not a valid JSON Schema: %s", schemaErrorText(err))
	}
	return sch, nil
}

// schemaErrorText shortens the compiler's message and drops the internal URL.
func schemaErrorText(err error) string {
	msg := strings.ReplaceAll(err.Error(), schemaURL, "")
	msg = strings.ReplaceAll(msg, "\n", "; ")
	if len(msg) > 300 {
		msg = msg[:300] + "..."
	}
	return msg
}

// NormalizeSchema returns raw compacted, with "$schema" set to
// DefaultSchemaDialect when raw names none. raw must be a JSON object.
func NormalizeSchema(raw json.RawMessage) (json.RawMessage, error) {
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		return nil, fmt.Errorf("compact schema: %w", err)
	}
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(buf.Bytes(), &probe); err != nil {
		return nil, fmt.Errorf("schema is not an object: %w", err)
	}
	if _, ok := probe["$schema"]; ok {
		return buf.Bytes(), nil
	}
	// Prepend the member so the author's key order is kept.
	out := []byte(`{"$schema":"` + DefaultSchemaDialect + `"`)
	rest := buf.Bytes()[1:]
	if len(rest) > 1 {
		out = append(out, ',')
	}
	return append(out, rest...), nil
}

// ValidateParameters checks instance parameters against p's schema.
func (p Plan) ValidateParameters(params json.RawMessage) error {
	sch, err := CompileSchema(p.ParametersSchema)
	if err != nil {
		return fmt.Errorf("plan %s parameters schema: %w", p.Name, err)
	}
	if len(bytes.TrimSpace(params)) == 0 {
		params = json.RawMessage("{}")
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(params))
	if err != nil {
		return fmt.Errorf("parameters are not valid JSON: %w", err)
	}
	if err := sch.Validate(v); err != nil {
		return fmt.Errorf("parameters do not match plan %s: %w", p.Name, err)
	}
	return nil
}
