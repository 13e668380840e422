package e2e

import (
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/canopy-platform/canopy/libs/openapitest"
)

// Every answer a scenario receives from /api/v1 is checked against the
// OpenAPI document (api/openapi/canopy.v1.yaml): a documented path and
// status, and a body matching the documented schema. A mismatch is a test
// error (the scenario goes on), so one run lists every contract break it met.

// TestContractCheck keeps the check itself honest: it must refuse what the
// document does not allow.
func TestContractCheck(t *testing.T) {
	spec := openapitest.MustLoad(t)
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
			err := spec.Check(req, tc.status, tc.header, []byte(tc.body))
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
