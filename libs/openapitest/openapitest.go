// Package openapitest checks real HTTP responses against Canopy's OpenAPI
// document in tests. Services validate against the merged document the
// gateway serves (api/openapi/canopy.v1.yaml, generated from the per-service
// fragments and kept current by the e2e tests), so a response that passes
// here is one an API user may rely on. It is for tests only.
package openapitest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"runtime"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
)

// Spec is a loaded, validated OpenAPI document with a router over its paths.
type Spec struct {
	// Doc is the parsed document.
	Doc    *openapi3.T
	router routers.Router
}

// DocumentPath is where the merged document lives, found from this
// package's own location so every module's tests reach the same file.
func DocumentPath() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "api", "openapi", "canopy.v1.yaml")
}

var (
	loadOnce sync.Once
	loaded   *Spec
	loadErr  error
)

// Load returns the document at DocumentPath, parsed and validated once per
// test binary.
func Load() (*Spec, error) {
	loadOnce.Do(func() { loaded, loadErr = loadFile(DocumentPath()) })
	return loaded, loadErr
}

func loadFile(path string) (*Spec, error) {
	doc, err := openapi3.NewLoader().LoadFromFile(path)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", path, err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		return nil, fmt.Errorf("validate %s: %w", path, err)
	}
	doc.Servers = nil // match the test servers' host:port
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		return nil, fmt.Errorf("route %s: %w", path, err)
	}
	return &Spec{Doc: doc, router: router}, nil
}

// MustLoad is Load that fails the test on error.
func MustLoad(t testing.TB) *Spec {
	t.Helper()
	s, err := Load()
	if err != nil {
		t.Fatalf("openapi: %v", err)
	}
	return s
}

// Check reports whether the response (status, header, body) to req is one
// the document allows for that route, status included.
func (s *Spec) Check(req *http.Request, status int, header http.Header, body []byte) error {
	route, params, err := s.router.FindRoute(req)
	if err != nil {
		return fmt.Errorf("%s %s is not in the OpenAPI document: %w", req.Method, req.URL.Path, err)
	}
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route,
			Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc}},
		Status:  status,
		Header:  header,
		Body:    io.NopCloser(bytes.NewReader(body)),
		Options: &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
	}
	if err := openapi3filter.ValidateResponse(context.Background(), in); err != nil {
		return fmt.Errorf("%s %s -> %d does not match the OpenAPI document: %w; body %s", req.Method, req.URL.Path, status, err, body)
	}
	return nil
}
