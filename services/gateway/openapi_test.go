package gateway_test

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"
)

var (
	specOnce   sync.Once
	specRouter routers.Router
	specErr    error
)

// loadSpec merges the shared base document with the gateway's fragment, the
// way the lead merges fragments into canopy.v1.yaml.
func loadSpec(t testing.TB) routers.Router {
	t.Helper()
	specOnce.Do(func() {
		dir := filepath.Join("..", "..", "api", "openapi")
		var base, frag map[string]any
		for path, dst := range map[string]*map[string]any{"base.yaml": &base, "gateway.paths.yaml": &frag} {
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
		loader := openapi3.NewLoader()
		doc, err := loader.LoadFromData(merged)
		if err != nil {
			specErr = err
			return
		}
		if err := doc.Validate(context.Background()); err != nil {
			specErr = err
			return
		}
		doc.Servers = nil // match any host:port
		specRouter, specErr = gorillamux.NewRouter(doc)
	})
	require.NoError(t, specErr)
	return specRouter
}

// validate checks a gateway response against the OpenAPI document.
func validate(t testing.TB, r response) {
	t.Helper()
	router := loadSpec(t)
	route, params, err := router.FindRoute(r.req)
	require.NoError(t, err, "%s %s is not in the OpenAPI document", r.req.Method, r.req.URL.Path)
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: r.req, PathParams: params, Route: route,
			Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc}},
		Status:  r.StatusCode,
		Header:  r.Header,
		Body:    io.NopCloser(bytes.NewReader(r.Body)),
		Options: &openapi3filter.Options{IncludeResponseStatus: true},
	}
	require.NoError(t, openapi3filter.ValidateResponse(context.Background(), in),
		"%s %s -> %d %s", r.req.Method, r.req.URL.Path, r.StatusCode, r.Body)
}
