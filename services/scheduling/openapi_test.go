package scheduling_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"gopkg.in/yaml.v3"
)

var (
	specOnce   sync.Once
	specRouter routers.Router
	specErr    error
)

// loadSpec merges base.yaml with the scheduling fragment the way the lead
// merges fragments into canopy.v1.yaml, and validates the result.
func loadSpec(t testing.TB) routers.Router {
	t.Helper()
	specOnce.Do(func() {
		dir := filepath.Join("..", "..", "api", "openapi")
		var base, frag map[string]any
		for path, dst := range map[string]*map[string]any{"base.yaml": &base, "scheduling.paths.yaml": &frag} {
			b, err := os.ReadFile(filepath.Join(dir, path))
			if err != nil {
				specErr = err
				return
			}
			if err := yaml.Unmarshal(b, dst); err != nil {
				specErr = err
				return
			}
		}
		paths, _ := base["paths"].(map[string]any)
		if paths == nil {
			paths = map[string]any{}
		}
		for k, v := range frag["paths"].(map[string]any) {
			paths[k] = v
		}
		base["paths"] = paths
		comps := base["components"].(map[string]any)
		for section, entries := range frag["components"].(map[string]any) {
			dst, _ := comps[section].(map[string]any)
			if dst == nil {
				dst = map[string]any{}
			}
			for k, v := range entries.(map[string]any) {
				dst[k] = v
			}
			comps[section] = dst
		}
		merged, err := yaml.Marshal(base)
		if err != nil {
			specErr = err
			return
		}
		doc, err := openapi3.NewLoader().LoadFromData(merged)
		if err != nil {
			specErr = err
			return
		}
		if err := doc.Validate(context.Background()); err != nil {
			specErr = err
			return
		}
		doc.Servers = nil
		specRouter, specErr = gorillamux.NewRouter(doc)
	})
	if specErr != nil {
		t.Fatalf("openapi: %v", specErr)
	}
	return specRouter
}

// validateResponse checks one real response against the OpenAPI document.
// Slash aliases of colon actions are checked against the colon path.
func validateResponse(t testing.TB, req *http.Request, status int, header http.Header, body []byte) {
	t.Helper()
	router := loadSpec(t)
	route, params, err := router.FindRoute(req)
	if err != nil {
		t.Errorf("%s %s is not in the OpenAPI document: %v", req.Method, req.URL.Path, err)
		return
	}
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route,
			Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc}},
		Status:  status,
		Header:  header,
		Body:    io.NopCloser(bytes.NewReader(body)),
		Options: &openapi3filter.Options{IncludeResponseStatus: true},
	}
	if err := openapi3filter.ValidateResponse(context.Background(), in); err != nil {
		t.Errorf("%s %s -> %d %s: %v", req.Method, req.URL.Path, status, body, err)
	}
}
