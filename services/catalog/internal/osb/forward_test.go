package osb

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/canopy-platform/canopy/services/catalog/internal/brokercred"
)

// TestForwarderResolvesBaseURL: with ResolveBaseURL the forwarder sends each
// call where provisioning listens at that moment, not to the base it was
// built with, and answers 503 while there is no address yet.
func TestForwarderResolvesBaseURL(t *testing.T) {
	var got []string
	prov := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = append(got, r.Method+" "+r.URL.RequestURI())
		w.WriteHeader(http.StatusAccepted)
	}))
	defer prov.Close()

	f, err := NewForwarder("http://127.0.0.1:1", []byte("0123456789abcdef0123456789abcdef"))
	require.NoError(t, err)
	base := ""
	f.ResolveBaseURL(func() string { return base })
	call := func() *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodPut, "/v2/service_instances/i1?accepts_incomplete=true", strings.NewReader(`{}`))
		req = req.WithContext(context.WithValue(req.Context(), credentialKey{}, brokercred.Credential{ID: "c1", Tenant: "acme"}))
		rec := httptest.NewRecorder()
		f.ServeHTTP(rec, req)
		return rec
	}

	rec := call()
	require.Equal(t, http.StatusServiceUnavailable, rec.Code, rec.Body.String())
	require.Empty(t, got)

	base = prov.URL
	rec = call()
	require.Equal(t, http.StatusAccepted, rec.Code, rec.Body.String())
	require.Equal(t, []string{"PUT /v2/service_instances/i1?accepts_incomplete=true"}, got)
}
