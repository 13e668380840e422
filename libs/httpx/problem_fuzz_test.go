package httpx_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/canopy-platform/canopy/libs/httpx"
)

// FuzzDecodeJSON feeds arbitrary bodies and content types to a handler that
// decodes with DecodeJSON behind the standard router (64-byte body limit):
// it answers 201, or a 4xx application/problem+json — never a 5xx or a panic.
func FuzzDecodeJSON(f *testing.F) {
	for _, s := range []struct{ body, ct string }{
		{`{"name":"a","count":1}`, "application/json"},
		{`{"name":"a","count":1}`, "application/merge-patch+json"},
		{`{"name":`, "application/json"},
		{`hello`, ""},
		{``, "application/json"},
		{`{"name":"a","colour":"red"}`, "application/json"},
		{`{"name":"a","count":"three"}`, "application/json"},
		{`{"count":1e400}`, "application/json"},
		{`{"name":"a"}{"name":"b"}`, "application/json"},
		{`[1,2,3]`, "application/json"},
		{`null`, "application/json"},
		{`{"name":"` + strings.Repeat("x", 100) + `"}`, "application/json"},
		{`{"name":"a"}`, "text/plain"},
	} {
		f.Add([]byte(s.body), s.ct)
	}
	h := thingRouter()
	f.Fuzz(func(t *testing.T, body []byte, ct string) {
		req := httptest.NewRequest(http.MethodPost, "/things", strings.NewReader(string(body)))
		if ct != "" {
			req.Header["Content-Type"] = []string{ct}
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code == http.StatusCreated {
			return
		}
		if rec.Code < 400 || rec.Code >= 500 {
			t.Fatalf("status %d for body %q: %s", rec.Code, body, rec.Body)
		}
		if got := rec.Header().Get("Content-Type"); got != httpx.ProblemContentType {
			t.Fatalf("status %d with content type %q", rec.Code, got)
		}
		var p problemBody
		if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil || p.Status != rec.Code {
			t.Fatalf("problem body %q: %v", rec.Body, err)
		}
	})
}
