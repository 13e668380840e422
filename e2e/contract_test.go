package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
)

// Every answer a scenario receives from /api/v1 is checked against the
// OpenAPI document (api/openapi/canopy.v1.yaml): a documented path and
// status, and a body matching the documented schema. A mismatch is a test
// error (the scenario goes on), so one run lists every contract break it met.

var contract struct {
	once   sync.Once
	router routers.Router
	err    error
}

// contractRouter loads the merged OpenAPI document of the repository at root.
func contractRouter(root string) (routers.Router, error) {
	contract.once.Do(func() {
		path := filepath.Join(root, mergedSpec)
		doc, err := openapi3.NewLoader().LoadFromFile(path)
		if err != nil {
			contract.err = fmt.Errorf("load %s: %w", path, err)
			return
		}
		doc.Servers = nil // match any host:port
		contract.router, contract.err = gorillamux.NewRouter(doc)
	})
	return contract.router, contract.err
}

// checkContract validates one answer to req against the document.
func checkContract(router routers.Router, req *http.Request, status int, header http.Header, body []byte) error {
	route, params, err := router.FindRoute(req)
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
		return fmt.Errorf("%s %s -> %d does not match the OpenAPI document: %w; body %.500s", req.Method, req.URL.Path, status, err, body)
	}
	return nil
}

// TestContractCheck keeps the check itself honest: it must refuse what the
// document does not allow.
func TestContractCheck(t *testing.T) {
	router, err := contractRouter(repoRoot(t))
	if err != nil {
		t.Fatal(err)
	}
	js := http.Header{"Content-Type": []string{"application/json"}}
	problem := http.Header{"Content-Type": []string{"application/problem+json"}}
	op := `{"id":"o","instance_id":"i","type":"create","state":"succeeded","step":"","started_at":"2026-01-01T00:00:00Z"}`
	tests := []struct {
		name    string
		path    string
		status  int
		header  http.Header
		body    string
		wantErr bool
	}{
		{"documented answer", "/api/v1/operations/o", 200, js, op, false},
		{"documented problem", "/api/v1/operations/o", 404, problem, `{"title":"Not Found","status":404}`, false},
		{"missing required member", "/api/v1/operations/o", 200, js, `{"id":"o"}`, true},
		{"value outside the enum", "/api/v1/operations/o", 200, js, strings.Replace(op, "succeeded", "done", 1), true},
		{"undocumented status", "/api/v1/operations/o", 418, problem, `{"title":"x","status":418}`, true},
		{"undocumented path", "/api/v1/nope", 200, js, `{}`, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodGet, "http://127.0.0.1:8080"+tc.path, nil)
			err := checkContract(router, req, tc.status, tc.header, []byte(tc.body))
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want an error: %v", err, tc.wantErr)
			}
		})
	}
}

// TestOpenAPIEveryRouteDocuments401 keeps the document honest about the
// gateway: every /api/v1 route but the document itself needs an API key, so
// every one can answer 401.
func TestOpenAPIEveryRouteDocuments401(t *testing.T) {
	doc, err := openapi3.NewLoader().LoadFromFile(filepath.Join(repoRoot(t), mergedSpec))
	if err != nil {
		t.Fatal(err)
	}
	for path, item := range doc.Paths.Map() {
		if !strings.HasPrefix(path, "/api/v1/") || path == "/api/v1/openapi.yaml" {
			continue
		}
		for method, op := range item.Operations() {
			if op.Responses.Value("401") == nil {
				t.Errorf("%s %s does not document 401 (no or bad API key)", method, path)
			}
		}
	}
}
