package gateway_test

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestPortalServed: the portal is the page at / and at every path that is
// not the API's (deep links); unknown API paths stay problem+json.
func TestPortalServed(t *testing.T) {
	e := newEnv(t)
	for _, p := range []string{"/", "/instances", "/some/deep/link"} {
		r := e.do("GET", p, "", nil)
		require.Equal(t, http.StatusOK, r.StatusCode, p)
		require.Equal(t, "text/html; charset=utf-8", r.Header.Get("Content-Type"), p)
		require.Contains(t, r.Header.Get("Content-Security-Policy"), "default-src 'self'", p)
		require.Contains(t, string(r.Body), `type="module"`, p)
	}
	for _, tc := range []struct{ method, path string }{
		{"GET", "/api/v1/nope"}, {"GET", "/api/"}, {"POST", "/somewhere"}, {"GET", "/internal/v1/x"}, {"GET", "/metrics"},
	} {
		r := e.do(tc.method, tc.path, "", nil)
		require.Equal(t, http.StatusNotFound, r.StatusCode, "%s %s", tc.method, tc.path)
		require.Equal(t, "application/problem+json", r.Header.Get("Content-Type"), "%s %s", tc.method, tc.path)
	}
}
