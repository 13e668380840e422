package httpapi

import (
	"context"
	"errors"
	"mime"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5/middleware"

	"github.com/canopy-platform/canopy/libs/httpx"
	"github.com/canopy-platform/canopy/libs/tenancy"
	"github.com/canopy-platform/canopy/services/gateway/internal/apikey"
	"github.com/canopy-platform/canopy/services/gateway/internal/audit"
	"github.com/canopy-platform/canopy/services/gateway/internal/auththrottle"
	"github.com/canopy-platform/canopy/services/gateway/internal/session"
)

// ProblemCSRF is the problem type of the 403 for a cookie-authenticated
// mutating request without the session's CSRF token.
const ProblemCSRF = "https://canopy.dev/problems/csrf-token-required"

type createSessionJSON struct {
	Key *string `json:"key"`
}

type principalJSON struct {
	TenantID *string `json:"tenant_id"`
	Role     string  `json:"role"`
	KeyID    string  `json:"key_id"`
}

type sessionJSON struct {
	ExpiresAt time.Time     `json:"expires_at"`
	CSRFToken string        `json:"csrf_token"`
	Principal principalJSON `json:"principal"`
}

func toSessionJSON(s session.Session, p tenancy.Principal) sessionJSON {
	out := sessionJSON{ExpiresAt: s.ExpiresAt.UTC(), CSRFToken: s.CSRFToken,
		Principal: principalJSON{Role: string(p.Role), KeyID: audit.KeyIDOf(p)}}
	if p.Tenant != "" {
		t := string(p.Tenant)
		out.Principal.TenantID = &t
	}
	return out
}

type sessionCtxKey struct{}

func sessionFrom(ctx context.Context) (session.Session, bool) {
	s, ok := ctx.Value(sessionCtxKey{}).(session.Session)
	return s, ok
}

// setSessionCookie gives the browser the session id: HttpOnly so scripts
// never see it, SameSite=Strict so other sites' requests never carry it,
// Secure when the request came over TLS.
func setSessionCookie(w http.ResponseWriter, r *http.Request, id string, maxAge time.Duration) {
	http.SetCookie(w, &http.Cookie{Name: session.CookieName, Value: id, Path: "/", MaxAge: int(maxAge / time.Second),
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil})
}

func clearSessionCookie(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{Name: session.CookieName, Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil})
}

// createSession exchanges an API key for a session (the portal's sign-in).
// It is outside the authenticated group: a bad key counts against the
// client's address like a bad bearer key.
func (a *api) createSession(w http.ResponseWriter, r *http.Request) {
	addr := a.clientAddr(r)
	if d, blocked := a.Throttle.Blocked(addr); blocked {
		a.tooManyFailures(w, r, d)
		return
	}
	// Only JSON: a form another site posts (text/plain, form-encoded) must
	// not sign the browser in to the attacker's account.
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		httpx.WriteProblem(w, r, httpx.NewProblem(http.StatusUnsupportedMediaType, "request body must be application/json"))
		return
	}
	var in createSessionJSON
	if err := httpx.DecodeJSON(w, r, &in); err != nil {
		a.fail(w, r, err)
		return
	}
	if in.Key == nil || *in.Key == "" {
		a.fail(w, r, httpx.BadRequest("an API key is required", httpx.FieldError{Field: "key", Reason: "is required"}))
		return
	}
	k, err := a.Auth.AuthenticateGated(r.Context(), "Bearer "+*in.Key, func(ctx context.Context) error { return a.checkFailures(ctx, addr) })
	if err != nil {
		a.authFailed(w, r, addr, err, "the API key is not valid (unknown, revoked or mistyped)")
		return
	}
	s, id, err := session.New(k.ID, a.Now(), a.SessionTTL)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if err := a.Sessions.CreateSession(r.Context(), s); err != nil {
		a.fail(w, r, err)
		return
	}
	p := k.Principal()
	a.Audit.Record(r.Context(), audit.Entry{KeyID: audit.KeyIDOf(p), Tenant: p.Tenant, Role: p.Role, Method: r.Method,
		Path: r.URL.Path, Status: http.StatusCreated, RequestID: middleware.GetReqID(r.Context())})
	setSessionCookie(w, r, id, s.ExpiresAt.Sub(a.Now()))
	w.Header().Set("Cache-Control", "no-store")
	httpx.WriteJSON(w, http.StatusCreated, toSessionJSON(s, p))
}

// getSession answers the current session, so a reloaded page learns its
// CSRF token and role.
func (a *api) getSession(w http.ResponseWriter, r *http.Request) {
	s, ok := sessionFrom(r.Context())
	if !ok {
		httpx.WriteProblem(w, r, httpx.NewProblem(http.StatusNotFound, "this request carries no session cookie (it authenticated with an API key)"))
		return
	}
	p, _ := tenancy.PrincipalFrom(r.Context())
	w.Header().Set("Cache-Control", "no-store")
	httpx.WriteJSON(w, http.StatusOK, toSessionJSON(s, p))
}

// deleteSession signs out: the row goes and the cookie is cleared.
func (a *api) deleteSession(w http.ResponseWriter, r *http.Request) {
	s, ok := sessionFrom(r.Context())
	if !ok {
		httpx.WriteProblem(w, r, httpx.NewProblem(http.StatusNotFound, "this request carries no session cookie (it authenticated with an API key)"))
		return
	}
	if err := a.Sessions.DeleteSession(r.Context(), s.IDHash); err != nil {
		a.fail(w, r, err)
		return
	}
	clearSessionCookie(w, r)
	w.WriteHeader(http.StatusNoContent)
}

// authenticateSession authenticates a request by its session cookie: the
// session must exist and be unexpired, its API key must still be valid
// (re-checked through the Authenticator on every request, so revoking the
// key ends the session), and a mutating request must echo the CSRF token.
func (a *api) authenticateSession(w http.ResponseWriter, r *http.Request, next http.Handler, addr, id string) {
	if !session.ValidID(id) {
		a.countFailure(r.Context(), addr)
		a.sessionRefused(w, r, "the session cookie is not valid; sign in again")
		return
	}
	s, err := a.Sessions.SessionByHash(r.Context(), session.Hash(id))
	switch {
	case errors.Is(err, session.ErrNotFound):
		a.countFailure(r.Context(), addr)
		a.sessionRefused(w, r, "the session has ended or does not exist; sign in again")
		return
	case err != nil:
		a.Logger.ErrorContext(r.Context(), "read session", "err", err)
		w.Header().Set("Retry-After", "1")
		httpx.WriteProblem(w, r, httpx.NewProblem(http.StatusServiceUnavailable, "authentication is temporarily unavailable"))
		return
	}
	if s.Expired(a.Now()) {
		a.sessionRefused(w, r, "the session has expired; sign in again")
		return
	}
	k, err := a.Auth.AuthenticateID(r.Context(), s.KeyID, func(ctx context.Context) error { return a.checkFailures(ctx, addr) })
	if err != nil {
		if errors.Is(err, apikey.ErrInvalidKey) {
			// The key was revoked: the session goes with it.
			if derr := a.Sessions.DeleteSession(r.Context(), s.IDHash); derr != nil {
				a.Logger.WarnContext(r.Context(), "delete the session of a revoked key", "err", derr)
			}
			a.sessionRefused(w, r, "the API key of this session is no longer valid; sign in again")
			return
		}
		a.authFailed(w, r, addr, err, "")
		return
	}
	if session.Mutating(r.Method) && !s.CheckCSRF(r.Header.Get(session.CSRFHeader)) {
		p := httpx.NewProblem(http.StatusForbidden, "a request authenticated by the session cookie that changes state must carry the "+
			session.CSRFHeader+" header with the session's csrf_token (returned by POST /api/v1/sessions and GET /api/v1/sessions/current)")
		p.Type = ProblemCSRF
		httpx.WriteProblem(w, r, p)
		return
	}
	ctx := tenancy.WithPrincipal(r.Context(), k.Principal())
	next.ServeHTTP(w, r.WithContext(context.WithValue(ctx, sessionCtxKey{}, s)))
}

// sessionRefused answers 401 for a session that cannot be used and tells
// the browser to drop its cookie.
func (a *api) sessionRefused(w http.ResponseWriter, r *http.Request, detail string) {
	clearSessionCookie(w, r)
	httpx.WriteProblem(w, r, httpx.NewProblem(http.StatusUnauthorized, detail))
}

// authFailed answers an authentication error: 429 for a throttled address,
// 401 (counted against addr) for an invalid key with detail, 503 otherwise.
func (a *api) authFailed(w http.ResponseWriter, r *http.Request, addr string, err error, detail string) {
	var te *auththrottle.ThrottledError
	switch {
	case errors.As(err, &te):
		a.tooManyFailures(w, r, te.RetryAfter)
	case errors.Is(err, apikey.ErrInvalidKey):
		a.countFailure(r.Context(), addr)
		if detail == "" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="canopy"`)
			detail = "a valid API key is required (Authorization: Bearer <key>)"
		}
		httpx.WriteProblem(w, r, httpx.NewProblem(http.StatusUnauthorized, detail))
	default:
		a.Logger.ErrorContext(r.Context(), "authenticate", "err", err)
		w.Header().Set("Retry-After", "1")
		httpx.WriteProblem(w, r, httpx.NewProblem(http.StatusServiceUnavailable, "authentication is temporarily unavailable"))
	}
}
