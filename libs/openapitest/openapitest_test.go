package openapitest_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/canopy-platform/canopy/libs/openapitest"
)

func TestCheck(t *testing.T) {
	s := openapitest.MustLoad(t)
	req := httptest.NewRequest(http.MethodGet, "http://127.0.0.1:8080/api/v1/catalog/plans/x", nil)
	problem := http.Header{"Content-Type": []string{"application/problem+json"}}
	tests := []struct {
		name    string
		req     *http.Request
		status  int
		header  http.Header
		body    string
		wantErr bool
	}{
		{name: "documented problem", req: req, status: 404, header: problem, body: `{"title":"Not Found","status":404}`},
		{name: "problem missing required member", req: req, status: 404, header: problem, body: `{"status":404}`, wantErr: true},
		{name: "undocumented path", req: httptest.NewRequest(http.MethodGet, "http://127.0.0.1:8080/api/v1/nope", nil), status: 200, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := s.Check(tc.req, tc.status, tc.header, []byte(tc.body))
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want error %v", err, tc.wantErr)
			}
		})
	}
}
