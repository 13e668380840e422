package httpx_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/stretchr/testify/require"

	"github.com/canopy-platform/canopy/libs/httpx"
	"github.com/canopy-platform/canopy/libs/obs"
)

type createThing struct {
	Name  string `json:"name"`
	Count int    `json:"count"`
}

func thingRouter() http.Handler {
	r := httpx.NewRouter(obs.NopLogger(), httpx.WithMaxBodyBytes(64))
	r.Post("/things", func(w http.ResponseWriter, r *http.Request) {
		var in createThing
		if err := httpx.DecodeJSON(w, r, &in); err != nil {
			httpx.WriteError(w, r, err)
			return
		}
		httpx.WriteJSON(w, http.StatusCreated, in)
	})
	r.Get("/panic", func(http.ResponseWriter, *http.Request) { panic("boom") })
	return r
}

type problemBody struct {
	Title     string             `json:"title"`
	Status    int                `json:"status"`
	Detail    string             `json:"detail"`
	Instance  string             `json:"instance"`
	RequestID string             `json:"request_id"`
	Errors    []httpx.FieldError `json:"errors"`
}

func TestDecodeJSONProblems(t *testing.T) {
	tests := []struct {
		name       string
		body       string
		wantStatus int
		wantField  string
	}{
		{name: "valid", body: `{"name":"a","count":1}`, wantStatus: http.StatusCreated},
		{name: "bad json", body: `{"name":`, wantStatus: http.StatusBadRequest},
		{name: "not json at all", body: `hello`, wantStatus: http.StatusBadRequest},
		{name: "empty body", body: ``, wantStatus: http.StatusBadRequest},
		{name: "unknown field", body: `{"name":"a","colour":"red"}`, wantStatus: http.StatusBadRequest, wantField: "colour"},
		{name: "wrong type", body: `{"name":"a","count":"three"}`, wantStatus: http.StatusBadRequest, wantField: "count"},
		{name: "trailing data", body: `{"name":"a"}{"name":"b"}`, wantStatus: http.StatusBadRequest},
		{name: "oversize body", body: `{"name":"` + strings.Repeat("x", 100) + `"}`, wantStatus: http.StatusRequestEntityTooLarge},
	}
	srv := httptest.NewServer(thingRouter())
	defer srv.Close()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := http.Post(srv.URL+"/things", "application/json", strings.NewReader(tc.body))
			require.NoError(t, err)
			defer resp.Body.Close()
			require.Equal(t, tc.wantStatus, resp.StatusCode)
			require.NotEmpty(t, resp.Header.Get(httpx.RequestIDHeader))
			if tc.wantStatus < 400 {
				return
			}
			require.Equal(t, httpx.ProblemContentType, resp.Header.Get("Content-Type"))
			var p problemBody
			require.NoError(t, json.NewDecoder(resp.Body).Decode(&p))
			require.Equal(t, tc.wantStatus, p.Status)
			require.NotEmpty(t, p.Title)
			require.Equal(t, "/things", p.Instance)
			require.Equal(t, resp.Header.Get(httpx.RequestIDHeader), p.RequestID)
			if tc.wantField != "" {
				require.Len(t, p.Errors, 1)
				require.Equal(t, tc.wantField, p.Errors[0].Field)
				require.NotEmpty(t, p.Errors[0].Reason)
			}
		})
	}
}

func TestPanicBecomesProblem(t *testing.T) {
	srv := httptest.NewServer(thingRouter())
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/panic")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusInternalServerError, resp.StatusCode)
	require.Equal(t, httpx.ProblemContentType, resp.Header.Get("Content-Type"))
}

func TestUnknownRouteIsProblem(t *testing.T) {
	srv := httptest.NewServer(thingRouter())
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/nope")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusNotFound, resp.StatusCode)
	require.Equal(t, httpx.ProblemContentType, resp.Header.Get("Content-Type"))
}

func TestProblemExtensions(t *testing.T) {
	p := httpx.Unprocessable("no host fits")
	p.Extensions = map[string]any{"filters": []string{"capacity"}}
	b, err := json.Marshal(p)
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(b, &m))
	require.Equal(t, float64(422), m["status"])
	require.Equal(t, []any{"capacity"}, m["filters"])
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestServerReadinessAndGracefulShutdown(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{})
	app := http.NewServeMux()
	app.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		close(started)
		<-release
		_, _ = w.Write([]byte("done"))
	})
	srv := httpx.NewServer(httpx.Config{Addr: "127.0.0.1:0", ShutdownDelay: 300 * time.Millisecond}, app, obs.NopLogger(), obs.NewRegistry())
	depErr := errors.New("db down")
	var depDown bool
	srv.AddReadinessCheck("db", func(context.Context) error {
		if depDown {
			return depErr
		}
		return nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	<-srv.Ready()
	base := "http://" + srv.Addr()

	code, _ := get(t, base+"/livez")
	require.Equal(t, http.StatusOK, code)
	code, _ = get(t, base+"/readyz")
	require.Equal(t, http.StatusOK, code)
	code, body := get(t, base+"/metrics")
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, "go_goroutines")

	depDown = true
	code, body = get(t, base+"/readyz")
	require.Equal(t, http.StatusServiceUnavailable, code)
	require.Contains(t, body, "db down")
	depDown = false

	slow := make(chan string, 1)
	go func() { _, b := get(t, base+"/slow"); slow <- b }()
	<-started
	cancel()
	// During the shutdown delay the server still answers, but not ready.
	require.Eventually(t, func() bool {
		code, _ := get(t, base+"/readyz")
		return code == http.StatusServiceUnavailable
	}, 2*time.Second, 10*time.Millisecond)
	close(release)
	require.Equal(t, "done", <-slow, "in-flight request drained")
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(5 * time.Second):
		t.Fatal("server did not stop")
	}
}

func TestSharedProblemIsNotMutated(t *testing.T) {
	shared := httpx.NewProblem(http.StatusNotFound, "no such resource")
	for _, path := range []string{"/a", "/b"} {
		rec := httptest.NewRecorder()
		httpx.WriteProblem(rec, httptest.NewRequest(http.MethodGet, path, nil), shared)
		var p problemBody
		require.NoError(t, json.NewDecoder(rec.Body).Decode(&p))
		require.Equal(t, path, p.Instance)
	}
	require.Empty(t, shared.Instance)
}

func TestBriefReadinessHidesDependencies(t *testing.T) {
	srv := httpx.NewServer(httpx.Config{Addr: "127.0.0.1:0"}, nil, obs.NopLogger(), nil, httpx.WithBriefReadiness())
	srv.AddReadinessCheck("mysql", func(context.Context) error { return errors.New("dial tcp 10.0.0.7:3306: refused") })
	rec := httptest.NewRecorder()
	srv.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
	require.Equal(t, http.StatusServiceUnavailable, rec.Code)
	require.JSONEq(t, `{"status":"not ready"}`, rec.Body.String())

	rec = httptest.NewRecorder()
	srv.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	require.Equal(t, http.StatusNotFound, rec.Code, "no registry, no /metrics")
}

// TestServerHandlerRoutesLikeServeMux checks that the server's shortcut to
// the application answers every request exactly as the plain ServeMux did:
// probes and metrics to their handlers, unclean paths redirected, the rest
// to the application with r.Pattern "/".
func TestServerHandlerRoutesLikeServeMux(t *testing.T) {
	app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "app "+r.Method+" "+r.URL.Path+" pattern="+r.Pattern)
	})
	reg := obs.NewRegistry()
	got := httpx.NewServer(httpx.Config{Addr: "127.0.0.1:0"}, app, nil, reg).Handler()
	want := http.NewServeMux() // what Handler used to return
	want.HandleFunc("GET /livez", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok\n") })
	want.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, `{"status":"ok"}`+"\n") })
	want.HandleFunc("GET /metrics", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "metrics") })
	want.Handle("/", app)
	for _, tc := range []struct{ name, method, target string }{
		{"app", "GET", "/api/v1/catalog/services"},
		{"app query", "GET", "/api/v1/catalog/services?x=1"},
		{"root", "GET", "/"},
		{"trailing slash", "GET", "/api/v1/tenants/"},
		{"dot file", "GET", "/a/.well-known/b"},
		{"dots in name", "GET", "/a/..b/c.."},
		{"post to probe path", "POST", "/livez"},
		{"probe subpath", "GET", "/livez/x"},
		{"double slash", "GET", "/api//v1"},
		{"leading double slash", "GET", "//api/v1"},
		{"dot segment", "GET", "/api/./v1"},
		{"dot dot segment", "GET", "/api/v1/../x"},
		{"trailing dot", "GET", "/api/v1/."},
		{"trailing dot dot", "GET", "/api/v1/.."},
		{"escaped", "GET", "/api/v1/a%2Fb"},
		{"escaped probe", "GET", "/liv%65z"},
		{"escaped dot", "GET", "/api/%2e%2e/x"},
		{"space", "GET", "/a%20b"},
		{"star", "OPTIONS", "*"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := func() *http.Request {
				r := httptest.NewRequest(tc.method, "http://example"+tc.target, nil)
				if tc.target == "*" {
					r = httptest.NewRequest(tc.method, "*", nil)
				}
				return r
			}
			g, w := httptest.NewRecorder(), httptest.NewRecorder()
			got.ServeHTTP(g, req())
			want.ServeHTTP(w, req())
			require.Equal(t, w.Code, g.Code)
			require.Equal(t, w.Header().Get("Location"), g.Header().Get("Location"))
			require.Equal(t, w.Body.String(), g.Body.String())
		})
	}
	for _, p := range []string{"/livez", "/readyz", "/metrics"} {
		g := httptest.NewRecorder()
		got.ServeHTTP(g, httptest.NewRequest("GET", p, nil))
		require.Equal(t, http.StatusOK, g.Code, p)
		require.NotContains(t, g.Body.String(), "app ", p)
	}
}

func TestGeneratedRequestIDsAreDistinctULIDs(t *testing.T) {
	h := thingRouter()
	seen := map[string]bool{}
	for range 1000 {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("GET", "/nothing", nil))
		id := w.Header().Get(httpx.RequestIDHeader)
		u, err := ulid.ParseStrict(id)
		require.NoError(t, err, id)
		require.InDelta(t, time.Now().UnixMilli(), int64(u.Time()), 5000)
		require.False(t, seen[id], "duplicate id %s", id)
		seen[id] = true
	}
	w := httptest.NewRecorder()
	r := httptest.NewRequest("GET", "/nothing", nil)
	r.Header.Set(httpx.RequestIDHeader, "caller-id")
	h.ServeHTTP(w, r)
	require.Equal(t, "caller-id", w.Header().Get(httpx.RequestIDHeader))
}
