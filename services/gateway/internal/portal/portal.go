// Package portal serves Canopy's web console: a small single-page app of
// plain ES modules (Preact and htm vendored as one file, no build step),
// embedded in the gateway binary so it works offline and needs nothing on
// a fresh machine. It only serves files: every call the page makes goes to
// the gateway's API on the same origin. See docs/portal.md.
package portal

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net/http"
	"path"
	"strings"
)

//go:embed assets
var embedded embed.FS

// AssetsPrefix starts every asset's URL; the content version follows it, so
// a release's assets can be cached for good and a new one is fetched anew.
const AssetsPrefix = "/assets/"

// ContentSecurityPolicy allows the page only its own origin: no inline
// script, no eval, no other host.
const ContentSecurityPolicy = "default-src 'self'; base-uri 'none'; object-src 'none'; frame-ancestors 'none'; form-action 'self'"

// versionPlaceholder in index.html is replaced by AssetsPrefix + version.
const versionPlaceholder = "{{ASSETS}}"

type asset struct {
	body, gz    []byte
	contentType string
	etag        string
}

// Handler serves the portal: the assets under /assets/<version>/ and
// index.html for every other path (the app routes by the URL's hash, and a
// deep link to any path still loads it).
type Handler struct {
	version string
	assets  map[string]*asset // by path below assets/
	index   *asset
}

// New reads and compresses the embedded assets.
func New() (*Handler, error) {
	sub, err := fs.Sub(embedded, "assets")
	if err != nil {
		return nil, fmt.Errorf("portal assets: %w", err)
	}
	return newHandler(sub)
}

func newHandler(files fs.FS) (*Handler, error) {
	raw := map[string][]byte{}
	sum := sha256.New()
	err := fs.WalkDir(files, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(files, p)
		if err != nil {
			return err
		}
		raw[p] = b
		fmt.Fprintf(sum, "%s\x00%d\x00", p, len(b))
		sum.Write(b)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("portal assets: %w", err)
	}
	indexSrc, ok := raw["index.html"]
	if !ok {
		return nil, fmt.Errorf("portal assets: no index.html")
	}
	h := &Handler{version: hex.EncodeToString(sum.Sum(nil))[:12], assets: map[string]*asset{}}
	for p, b := range raw {
		if p == "index.html" {
			continue
		}
		if h.assets[p], err = newAsset(p, b); err != nil {
			return nil, err
		}
	}
	index := bytes.ReplaceAll(indexSrc, []byte(versionPlaceholder), []byte(h.AssetsBase()))
	if h.index, err = newAsset("index.html", index); err != nil {
		return nil, err
	}
	return h, nil
}

func newAsset(p string, b []byte) (*asset, error) {
	a := &asset{body: b, contentType: contentType(p)}
	s := sha256.Sum256(b)
	a.etag = `"` + hex.EncodeToString(s[:8]) + `"`
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		return nil, err
	}
	if _, err := zw.Write(b); err != nil {
		return nil, fmt.Errorf("gzip %s: %w", p, err)
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("gzip %s: %w", p, err)
	}
	if buf.Len() < len(b) {
		a.gz = buf.Bytes()
	}
	return a, nil
}

func contentType(p string) string {
	switch path.Ext(p) {
	case ".html":
		return "text/html; charset=utf-8"
	case ".js":
		return "text/javascript; charset=utf-8"
	case ".css":
		return "text/css; charset=utf-8"
	case ".svg":
		return "image/svg+xml"
	case ".png":
		return "image/png"
	default:
		return "text/plain; charset=utf-8"
	}
}

// AssetsBase is the URL path the current assets are served under, e.g.
// "/assets/0123456789ab".
func (h *Handler) AssetsBase() string { return AssetsPrefix + h.version }

// ServeHTTP answers GET and HEAD.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hdr := w.Header()
	hdr.Set("Content-Security-Policy", ContentSecurityPolicy)
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("Referrer-Policy", "no-referrer")
	hdr.Set("X-Frame-Options", "DENY")
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		hdr.Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	rest, isAsset := strings.CutPrefix(r.URL.Path, AssetsPrefix)
	if !isAsset {
		// The page itself is always revalidated, so a new release's asset
		// version is picked up at the next load.
		hdr.Set("Cache-Control", "no-cache")
		h.serve(w, r, h.index)
		return
	}
	version, name, _ := strings.Cut(rest, "/")
	a := h.assets[name]
	if a == nil {
		http.Error(w, "no such asset", http.StatusNotFound)
		return
	}
	if version == h.version {
		hdr.Set("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		// A page of an older release asks: give today's file, uncached.
		hdr.Set("Cache-Control", "no-cache")
	}
	h.serve(w, r, a)
}

func (h *Handler) serve(w http.ResponseWriter, r *http.Request, a *asset) {
	hdr := w.Header()
	hdr.Set("Content-Type", a.contentType)
	hdr.Set("ETag", a.etag)
	hdr.Add("Vary", "Accept-Encoding")
	if match := r.Header.Get("If-None-Match"); match != "" && strings.Contains(match, a.etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	body := a.body
	if a.gz != nil && acceptsGzip(r.Header.Get("Accept-Encoding")) {
		hdr.Set("Content-Encoding", "gzip")
		body = a.gz
	}
	hdr.Set("Content-Length", fmt.Sprint(len(body)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
}

// acceptsGzip reports whether an Accept-Encoding value allows gzip (and
// does not refuse it with q=0).
func acceptsGzip(v string) bool {
	for part := range strings.SplitSeq(v, ",") {
		name, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if !strings.EqualFold(strings.TrimSpace(name), "gzip") && strings.TrimSpace(name) != "*" {
			continue
		}
		q := strings.ReplaceAll(strings.TrimSpace(params), " ", "")
		return q != "q=0" && q != "q=0.0" && q != "q=0.00" && q != "q=0.000"
	}
	return false
}
