package osb

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
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

// TestForwarderReplicas: with provisioning's replicas listed, a call the
// stopped replica refused goes to the other, and a PUT a replica read
// before dropping the connection is not sent again (502).
func TestForwarderReplicas(t *testing.T) {
	var hits, drops atomic.Int64
	live := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.WriteHeader(http.StatusAccepted)
	}))
	defer live.Close()
	stopped := httptest.NewServer(http.NotFoundHandler())
	stopped.Close()
	dropping := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.ReadAll(r.Body)
		drops.Add(1)
		if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
			_ = conn.Close()
		}
	}))
	defer dropping.Close()
	call := func(f *Forwarder) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodPut, "/v2/service_instances/i1?accepts_incomplete=true", strings.NewReader(`{}`))
		req = req.WithContext(context.WithValue(req.Context(), credentialKey{}, brokercred.Credential{ID: "c1", Tenant: "acme"}))
		rec := httptest.NewRecorder()
		f.ServeHTTP(rec, req)
		return rec
	}
	secret := []byte("0123456789abcdef0123456789abcdef")

	f, err := NewForwarder(stopped.URL+", "+live.URL, secret)
	require.NoError(t, err)
	for range 4 {
		rec := call(f)
		require.Equal(t, http.StatusAccepted, rec.Code, rec.Body.String())
	}
	require.EqualValues(t, 4, hits.Load())

	hits.Store(0)
	f, err = NewForwarder(dropping.URL+","+live.URL, secret)
	require.NoError(t, err)
	codes := map[int]int{}
	for range 2 {
		codes[call(f).Code]++
	}
	// Round robin: one call started on the dropping replica and failed
	// there; the other went to the live one. Nothing was sent twice.
	require.Equal(t, map[int]int{http.StatusBadGateway: 1, http.StatusAccepted: 1}, codes)
	require.EqualValues(t, 1, drops.Load())
	require.EqualValues(t, 1, hits.Load())

	_, err = NewForwarder("http://127.0.0.1:8084,127.0.0.1:8184", secret)
	require.ErrorContains(t, err, "entry 2")
}
