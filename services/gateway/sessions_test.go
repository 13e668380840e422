package gateway_test

import (
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/canopy-platform/canopy/libs/tenancy"
	"github.com/canopy-platform/canopy/services/gateway"
)

// signIn posts key to /api/v1/sessions and returns the answer.
func (e *env) signIn(key string) response {
	e.t.Helper()
	return e.do("POST", "/api/v1/sessions", "", map[string]any{"key": key})
}

// sessionCookie returns the canopy_session cookie a response set.
func sessionCookie(t testing.TB, r response) *http.Cookie {
	t.Helper()
	for _, c := range r.Cookies() {
		if c.Name == "canopy_session" {
			return c
		}
	}
	t.Fatalf("no canopy_session cookie in %v", r.Header.Values("Set-Cookie"))
	return nil
}

// withCookie is do with the session cookie and, when csrf is not empty, the CSRF header.
func (e *env) withCookie(method, path string, c *http.Cookie, csrf string, body any) response {
	e.t.Helper()
	h := []string{"Cookie", c.Name + "=" + c.Value}
	if csrf != "" {
		h = append(h, "X-CSRF-Token", csrf)
	}
	return e.do(method, path, "", body, h...)
}

func TestSessionLifecycle(t *testing.T) {
	e := newEnv(t)
	keys := e.tenantWithKeys("sess")

	r := e.signIn(keys[tenancy.RoleTenantAdmin])
	require.Equal(t, http.StatusCreated, r.StatusCode, "%s", r.Body)
	validate(t, r)
	body := r.json(t)
	csrf := body["csrf_token"].(string)
	require.Len(t, csrf, 43)
	principal := body["principal"].(map[string]any)
	require.Equal(t, "sess", principal["tenant_id"])
	require.Equal(t, "tenant-admin", principal["role"])
	require.Equal(t, "no-store", r.Header.Get("Cache-Control"))

	c := sessionCookie(t, r)
	require.True(t, c.HttpOnly)
	require.Equal(t, http.SameSiteStrictMode, c.SameSite)
	require.Equal(t, "/", c.Path)
	require.False(t, c.Secure, "plain HTTP: no Secure flag")
	require.InDelta(t, gateway.Defaults().SessionTTL.Seconds(), c.MaxAge, 5)
	require.Len(t, c.Value, 43, "256-bit id")
	require.NotContains(t, string(r.Body), c.Value, "the id is only in the cookie")

	// The database keeps only the id's hash.
	var n int
	require.NoError(t, e.db.SQL().QueryRow("SELECT COUNT(*) FROM sessions WHERE id_hash = SHA2(?, 256)", c.Value).Scan(&n))
	require.Equal(t, 0, n, "id_hash is binary; compare with UNHEX")
	require.NoError(t, e.db.SQL().QueryRow("SELECT COUNT(*) FROM sessions WHERE id_hash = UNHEX(SHA2(?, 256))", c.Value).Scan(&n))
	require.Equal(t, 1, n)
	require.NoError(t, e.db.SQL().QueryRow("SELECT COUNT(*) FROM sessions WHERE id_hash = ?", c.Value).Scan(&n))
	require.Equal(t, 0, n)

	// The current session answers the same token; the cookie authenticates
	// the gateway's own routes and proxied ones.
	cur := e.withCookie("GET", "/api/v1/sessions/current", c, "", nil)
	require.Equal(t, http.StatusOK, cur.StatusCode, "%s", cur.Body)
	validate(t, cur)
	require.Equal(t, csrf, cur.json(t)["csrf_token"])
	require.Equal(t, http.StatusOK, e.withCookie("GET", "/api/v1/tenants/sess", c, "", nil).StatusCode)
	px := e.withCookie("GET", "/api/v1/catalog/services", c, "", nil)
	require.Equal(t, http.StatusOK, px.StatusCode, "%s", px.Body)
	require.Equal(t, "tenant-admin", px.Header.Get("X-Seen-Role"))

	// Mutating with the cookie needs the CSRF token.
	create := map[string]any{"name": "from-portal", "role": "tenant-viewer"}
	for name, token := range map[string]string{"missing": "", "wrong": csrf[:42] + "x"} {
		t.Run("csrf "+name, func(t *testing.T) {
			r := e.withCookie("POST", "/api/v1/tenants/sess/api-keys", c, token, create)
			require.Equal(t, http.StatusForbidden, r.StatusCode, "%s", r.Body)
			require.Equal(t, "application/problem+json", r.Header.Get("Content-Type"))
			require.Contains(t, r.json(t)["detail"], "X-CSRF-Token")
			require.Equal(t, "https://canopy.dev/problems/csrf-token-required", r.json(t)["type"])
		})
	}
	ok := e.withCookie("POST", "/api/v1/tenants/sess/api-keys", c, csrf, create)
	require.Equal(t, http.StatusCreated, ok.StatusCode, "%s", ok.Body)

	// An explicit API key wins over the cookie (and needs no CSRF token).
	r = e.do("GET", "/api/v1/sessions/current", keys[tenancy.RoleTenantViewer], nil, "Cookie", c.Name+"="+c.Value)
	require.Equal(t, http.StatusNotFound, r.StatusCode, "%s", r.Body)

	// Sign out: 204, the cookie cleared, the session gone.
	require.Equal(t, http.StatusForbidden, e.withCookie("DELETE", "/api/v1/sessions/current", c, "", nil).StatusCode)
	out := e.withCookie("DELETE", "/api/v1/sessions/current", c, csrf, nil)
	require.Equal(t, http.StatusNoContent, out.StatusCode, "%s", out.Body)
	validate(t, out)
	cleared := sessionCookie(t, out)
	require.Equal(t, "", cleared.Value)
	require.Less(t, cleared.MaxAge, 0)
	gone := e.withCookie("GET", "/api/v1/sessions/current", c, "", nil)
	require.Equal(t, http.StatusUnauthorized, gone.StatusCode)
	validate(t, gone)
	require.NoError(t, e.db.SQL().QueryRow("SELECT COUNT(*) FROM sessions").Scan(&n))
	require.Equal(t, 0, n)
}

func TestSessionSignInRefusals(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct {
		name   string
		body   any
		ctype  string
		status int
		detail string
	}{
		{"bad key", map[string]any{"key": "cnp_01aaaaaaaaaaaaaaaaaaaaaaaa_nope"}, "", http.StatusUnauthorized, "not valid"},
		{"not a key", map[string]any{"key": "hello"}, "", http.StatusUnauthorized, "not valid"},
		{"no key", map[string]any{}, "", http.StatusBadRequest, "required"},
		{"unknown field", map[string]any{"key": "x", "user": "y"}, "", http.StatusBadRequest, "unknown"},
		{"form post", "key=x", "text/plain", http.StatusUnsupportedMediaType, "application/json"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var h []string
			if tc.ctype != "" {
				h = []string{"Content-Type", tc.ctype}
			}
			r := e.do("POST", "/api/v1/sessions", "", tc.body, h...)
			require.Equal(t, tc.status, r.StatusCode, "%s", r.Body)
			require.Equal(t, "application/problem+json", r.Header.Get("Content-Type"))
			require.Contains(t, r.json(t)["detail"], tc.detail)
			require.Empty(t, r.Cookies())
			if tc.status == http.StatusBadRequest || tc.status == http.StatusUnauthorized {
				validate(t, r)
			}
		})
	}
	r := e.do("POST", "/api/v1/sessions", "", map[string]any{})
	require.Equal(t, []any{map[string]any{"field": "key", "reason": "is required"}}, r.json(t)["errors"])
}

// TestSessionThrottled: bad keys at sign-in count against the address
// like bad bearer keys, and a throttled address is refused before lookups.
func TestSessionThrottled(t *testing.T) {
	e := newEnv(t, func(c *gateway.Config) { c.AuthFailures = 3 })
	for range 3 {
		require.Equal(t, http.StatusUnauthorized, e.signIn("cnp_01aaaaaaaaaaaaaaaaaaaaaaaa_nope").StatusCode)
	}
	r := e.signIn(e.adminKey)
	require.Equal(t, http.StatusTooManyRequests, r.StatusCode, "%s", r.Body)
	require.NotEmpty(t, r.Header.Get("Retry-After"))
}

// TestSessionEndsWithItsKey: revoking the key, or the session's expiry,
// refuses the cookie with 401 and clears it.
func TestSessionEndsWithItsKey(t *testing.T) {
	e := newEnv(t)
	e.tenantWithKeys("rev")
	k := e.do("POST", "/api/v1/tenants/rev/api-keys", e.adminKey, map[string]any{"name": "portal", "role": "tenant-member"})
	require.Equal(t, http.StatusCreated, k.StatusCode)
	kb := k.json(t)

	r := e.signIn(kb["key"].(string))
	require.Equal(t, http.StatusCreated, r.StatusCode)
	c := sessionCookie(t, r)
	require.Equal(t, http.StatusOK, e.withCookie("GET", "/api/v1/tenants/rev", c, "", nil).StatusCode)
	require.Equal(t, http.StatusNoContent, e.do("DELETE", "/api/v1/tenants/rev/api-keys/"+kb["id"].(string), e.adminKey, nil).StatusCode)
	r = e.withCookie("GET", "/api/v1/tenants/rev", c, "", nil)
	require.Equal(t, http.StatusUnauthorized, r.StatusCode, "%s", r.Body)
	require.Contains(t, r.json(t)["detail"], "no longer valid")
	require.Less(t, sessionCookie(t, r).MaxAge, 0)

	// Expiry: age a fresh session's row past its end.
	r = e.signIn(e.adminKey)
	require.Equal(t, http.StatusCreated, r.StatusCode)
	c = sessionCookie(t, r)
	require.Equal(t, http.StatusOK, e.withCookie("GET", "/api/v1/sessions/current", c, "", nil).StatusCode)
	_, err := e.db.SQL().Exec("UPDATE sessions SET expires_at = DATE_SUB(UTC_TIMESTAMP(6), INTERVAL 1 SECOND)")
	require.NoError(t, err)
	r = e.withCookie("GET", "/api/v1/sessions/current", c, "", nil)
	require.Equal(t, http.StatusUnauthorized, r.StatusCode, "%s", r.Body)
	require.Contains(t, r.json(t)["detail"], "expired")

	// A made-up cookie is 401 too.
	r = e.withCookie("GET", "/api/v1/tenants/rev", &http.Cookie{Name: "canopy_session", Value: strings.Repeat("a", 43)}, "", nil)
	require.Equal(t, http.StatusUnauthorized, r.StatusCode)
}

// TestSessionCookieSecureOverTLS: a request that came over TLS gets a
// Secure cookie.
func TestSessionCookieSecureOverTLS(t *testing.T) {
	e := newEnv(t)
	req := httptest.NewRequest("POST", "/api/v1/sessions", strings.NewReader(`{"key":"`+e.adminKey+`"}`))
	req.Header.Set("Content-Type", "application/json")
	req.TLS = &tls.ConnectionState{}
	rec := httptest.NewRecorder()
	e.svc.Handler().ServeHTTP(rec, req)
	require.Equal(t, http.StatusCreated, rec.Code, rec.Body.String())
	cookies := rec.Result().Cookies()
	require.Len(t, cookies, 1)
	require.True(t, cookies[0].Secure)
	require.True(t, cookies[0].HttpOnly)
}
