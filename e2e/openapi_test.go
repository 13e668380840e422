package e2e

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"gopkg.in/yaml.v3"
)

// The public contract is written in pieces: api/openapi/base.yaml holds what
// every route shares, and each service keeps its routes in
// api/openapi/<service>.paths.yaml. api/openapi/canopy.v1.yaml is the merged
// document the gateway serves and the services' tests validate against; these
// tests keep it equal to the merge of its pieces and valid OpenAPI 3.0.3.
// Regenerate it with `make openapi` (go test ./e2e -run OpenAPI -update).

var update = flag.Bool("update", false, "rewrite generated files (api/openapi/canopy.v1.yaml)")

const mergedSpec = "api/openapi/canopy.v1.yaml"

func mergeOpenAPI(root string) ([]byte, error) {
	dir := filepath.Join(root, "api", "openapi")
	var doc map[string]any
	if err := readYAML(filepath.Join(dir, "base.yaml"), &doc); err != nil {
		return nil, err
	}
	frags, err := filepath.Glob(filepath.Join(dir, "*.paths.yaml"))
	if err != nil {
		return nil, err
	}
	sort.Strings(frags)
	paths := asMap(doc, "paths")
	comps := asMap(doc, "components")
	var tags []any
	if t, ok := doc["tags"].([]any); ok {
		tags = t
	}
	seenTags := map[string]bool{}
	for _, t := range tags {
		if m, ok := t.(map[string]any); ok {
			seenTags[fmt.Sprint(m["name"])] = true
		}
	}
	for _, f := range frags {
		var frag map[string]any
		if err := readYAML(f, &frag); err != nil {
			return nil, err
		}
		name := filepath.Base(f)
		for p, item := range asMap(frag, "paths") {
			if _, dup := paths[p]; dup {
				return nil, fmt.Errorf("%s: path %s is already defined by another fragment", name, p)
			}
			paths[p] = item
		}
		for section, entries := range asMap(frag, "components") {
			dst := asMap(comps, section)
			for k, v := range entries.(map[string]any) {
				if old, dup := dst[k]; dup && !reflect.DeepEqual(old, v) {
					return nil, fmt.Errorf("%s: components.%s.%s differs from its earlier definition", name, section, k)
				}
				dst[k] = v
			}
		}
		if t, ok := frag["tags"].([]any); ok {
			for _, tag := range t {
				m, _ := tag.(map[string]any)
				if n := fmt.Sprint(m["name"]); !seenTags[n] {
					seenTags[n] = true
					tags = append(tags, tag)
				}
			}
		}
	}
	if len(tags) > 0 {
		doc["tags"] = tags
	}
	var buf bytes.Buffer
	buf.WriteString("# GENERATED from base.yaml and *.paths.yaml by `make openapi`; edit those, not this file.\n")
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(doc); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func readYAML(path string, dst any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := yaml.Unmarshal(b, dst); err != nil {
		return fmt.Errorf("parse %s: %w", path, err)
	}
	return nil
}

func asMap(m map[string]any, key string) map[string]any {
	v, ok := m[key].(map[string]any)
	if !ok {
		v = map[string]any{}
		m[key] = v
	}
	return v
}

func TestOpenAPIMergedDocumentIsCurrent(t *testing.T) {
	root := repoRoot(t)
	want, err := mergeOpenAPI(root)
	if err != nil {
		t.Fatalf("merge OpenAPI fragments: %v", err)
	}
	path := filepath.Join(root, mergedSpec)
	if *update {
		if err := os.WriteFile(path, want, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%s missing; run `make openapi`: %v", mergedSpec, err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s is out of date with its fragments; run `make openapi`", mergedSpec)
	}
}

func TestOpenAPIDocumentIsValid(t *testing.T) {
	root := repoRoot(t)
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromFile(filepath.Join(root, mergedSpec))
	if err != nil {
		t.Fatalf("load %s: %v", mergedSpec, err)
	}
	if doc.OpenAPI != "3.0.3" {
		t.Fatalf("openapi version %q, want 3.0.3", doc.OpenAPI)
	}
	if err := doc.Validate(loader.Context); err != nil {
		t.Fatalf("%s is not valid OpenAPI: %v", mergedSpec, err)
	}
	for p := range doc.Paths.Map() {
		if !strings.HasPrefix(p, "/api/v1/") && !strings.HasPrefix(p, "/v2/") {
			t.Errorf("path %s is outside /api/v1 and /v2", p)
		}
	}
}
