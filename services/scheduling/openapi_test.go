package scheduling_test

import (
	"net/http"
	"testing"

	"github.com/canopy-platform/canopy/libs/openapitest"
)

// validateResponse checks one real response against the OpenAPI document.
func validateResponse(t testing.TB, req *http.Request, status int, header http.Header, body []byte) {
	t.Helper()
	if err := openapitest.MustLoad(t).Check(req, status, header, body); err != nil {
		t.Error(err)
	}
}
