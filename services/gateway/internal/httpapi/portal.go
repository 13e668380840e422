package httpapi

import (
	"net/http"
	"strings"

	"github.com/canopy-platform/canopy/libs/httpx"
)

// apiPrefixes are the paths that are never the portal's: an unknown one
// answers problem+json, not the page.
var apiPrefixes = []string{"/api/", "/v2/", "/internal/"}

// operatorPaths are served on the internal listener only; on the public
// one they stay 404, so a scraper pointed at the wrong port is told so.
var operatorPaths = map[string]bool{"/metrics": true, "/livez": true, "/readyz": true}

// portalOrProblem is the router's not-found handler when the portal is
// served: a GET of any other path is a deep link into the portal (its
// handler answers the page or the asset), anything else is 404.
func portalOrProblem(portal http.Handler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if (r.Method == http.MethodGet || r.Method == http.MethodHead) && !isAPIPath(r.URL.Path) {
			portal.ServeHTTP(w, r)
			return
		}
		httpx.WriteProblem(w, r, httpx.NewProblem(http.StatusNotFound, "no such resource"))
	}
}

func isAPIPath(p string) bool {
	if operatorPaths[p] {
		return true
	}
	for _, prefix := range apiPrefixes {
		if strings.HasPrefix(p, prefix) || p+"/" == prefix {
			return true
		}
	}
	return false
}
