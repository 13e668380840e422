package portal

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"path"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func get(t *testing.T, h http.Handler, target string, header ...string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest("GET", target, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestServe(t *testing.T) {
	h, err := New()
	require.NoError(t, err)
	base := h.AssetsBase()

	for _, p := range []string{"/", "/instances/abc", "/some/deep/link"} {
		t.Run("page "+p, func(t *testing.T) {
			rec := get(t, h, p)
			require.Equal(t, http.StatusOK, rec.Code)
			require.Equal(t, "text/html; charset=utf-8", rec.Header().Get("Content-Type"))
			require.Equal(t, ContentSecurityPolicy, rec.Header().Get("Content-Security-Policy"))
			require.Contains(t, rec.Header().Get("Content-Security-Policy"), "default-src 'self'")
			require.Equal(t, "nosniff", rec.Header().Get("X-Content-Type-Options"))
			require.Equal(t, "no-cache", rec.Header().Get("Cache-Control"))
			require.Contains(t, rec.Body.String(), `src="`+base+`/app.js"`)
			require.NotContains(t, rec.Body.String(), versionPlaceholder)
		})
	}

	rec := get(t, h, base+"/app.js", "Accept-Encoding", "br, gzip")
	require.Equal(t, http.StatusOK, rec.Code)
	require.Equal(t, "text/javascript; charset=utf-8", rec.Header().Get("Content-Type"))
	require.Equal(t, "gzip", rec.Header().Get("Content-Encoding"))
	require.Equal(t, "public, max-age=31536000, immutable", rec.Header().Get("Cache-Control"))
	require.Contains(t, rec.Header().Values("Vary"), "Accept-Encoding")
	zr, err := gzip.NewReader(rec.Body)
	require.NoError(t, err)
	plain, err := io.ReadAll(zr)
	require.NoError(t, err)
	require.Contains(t, string(plain), "render(")

	rec = get(t, h, base+"/app.js", "Accept-Encoding", "gzip;q=0")
	require.Empty(t, rec.Header().Get("Content-Encoding"))
	require.Contains(t, rec.Body.String(), "render(")

	etag := rec.Header().Get("ETag")
	require.NotEmpty(t, etag)
	require.Equal(t, http.StatusNotModified, get(t, h, base+"/app.js", "If-None-Match", etag).Code)

	// Another release's URL still gets the file, uncached; unknown assets are 404.
	rec = get(t, h, "/assets/000000000000/app.js")
	require.Equal(t, http.StatusOK, rec.Code)
	require.Equal(t, "no-cache", rec.Header().Get("Cache-Control"))
	require.Equal(t, http.StatusNotFound, get(t, h, base+"/nope.js").Code)

	req := httptest.NewRequest("POST", "/", nil)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	require.Equal(t, http.StatusMethodNotAllowed, w.Code)
}

func TestAcceptsGzip(t *testing.T) {
	for v, want := range map[string]bool{"": false, "gzip": true, "GZIP": true, "br, gzip;q=0.8": true, "gzip;q=0": false, "*": true, "identity": false, "deflate, br": false} {
		require.Equal(t, want, acceptsGzip(v), "%q", v)
	}
}

var (
	htmlRef     = regexp.MustCompile(`(?:src|href)="\{\{ASSETS\}\}/([^"]+)"`)
	staticFrom  = regexp.MustCompile(`(?m)(?:^|[;\s])(?:import|export)\s[^'"]*?from\s*'(\.{1,2}/[^']+)'`)
	bareImport  = regexp.MustCompile(`(?m)^import\s*'(\.{1,2}/[^']+)'`)
	lineComment = regexp.MustCompile(`(?m)^\s*//.*$`)
	routeLoad   = regexp.MustCompile(`import\('(\./pages/[^']+)'\)`)
)

// firstLoad returns the assets a browser fetches to show the sign-in page
// and then the instances page: what index.html names, the static import
// graph of its module, and the pages (loaded on demand) with their imports.
func firstLoad(t *testing.T, pages ...string) []string {
	t.Helper()
	read := func(name string) []byte {
		b, err := embedded.ReadFile("assets/" + name)
		require.NoError(t, err, "asset %s", name)
		return b
	}
	seen := map[string]bool{"index.html": true}
	order := []string{"index.html"}
	var visit func(name string)
	visit = func(name string) {
		if seen[name] {
			return
		}
		seen[name] = true
		order = append(order, name)
		if !strings.HasSuffix(name, ".js") {
			return
		}
		src := lineComment.ReplaceAll(read(name), nil) // examples in comments are not imports
		for _, re := range []*regexp.Regexp{staticFrom, bareImport} {
			for _, m := range re.FindAllSubmatch(src, -1) {
				visit(path.Join(path.Dir(name), string(m[1])))
			}
		}
	}
	for _, m := range htmlRef.FindAllSubmatch(read("index.html"), -1) {
		visit(string(m[1]))
	}
	for _, p := range pages {
		visit(p)
	}
	return order
}

// TestFirstLoadSize keeps what the sign-in and the instances page load,
// gzipped, under 300 KB (issue 18), and logs the figure.
func TestFirstLoadSize(t *testing.T) {
	routesSrc, err := embedded.ReadFile("assets/routes.js")
	require.NoError(t, err)
	require.Contains(t, string(routesSrc), "import('./pages/instances.js')", "the instances page is a route")
	require.NotEmpty(t, routeLoad.FindAll(routesSrc, -1))

	names := firstLoad(t, "pages/instances.js")
	require.Contains(t, names, "vendor/preact-htm.js")
	require.Contains(t, names, "pages/signin.js")
	require.Contains(t, names, "portal.css")
	var raw, gz int
	for _, n := range names {
		b, err := embedded.ReadFile("assets/" + n)
		require.NoError(t, err)
		var buf bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
		_, _ = zw.Write(b)
		require.NoError(t, zw.Close())
		raw += len(b)
		gz += buf.Len()
		t.Logf("%-24s %6d bytes, %6d gzipped", n, len(b), buf.Len())
	}
	t.Logf("first load (sign-in + instances): %d files, %.1f KB, %.1f KB gzipped", len(names), float64(raw)/1024, float64(gz)/1024)
	require.Less(t, gz, 300*1024, "first load must stay under 300 KB gzipped")
}
