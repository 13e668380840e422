package httpapi

import (
	"errors"
	"net/http"
	"strconv"
	"time"
	"unicode"

	"github.com/go-chi/chi/v5/middleware"

	"github.com/canopy-platform/canopy/libs/httpx"
	"github.com/canopy-platform/canopy/libs/tenancy"
	"github.com/canopy-platform/canopy/services/gateway/internal/auththrottle"
	"github.com/canopy-platform/canopy/services/gateway/internal/ratelimit"
)

// The Open Service Broker API is authenticated by the catalog (HTTP Basic
// broker credentials), not here; the gateway only keeps it from being an
// unmetered way in. The credential is unverified at this point, so a made-up
// username must not buy a fresh bucket: every request the catalog answers
// 401 counts as a failed authentication of the client address, like a bad
// API key, and so does a request without usable Basic credentials (answered
// here without reaching the catalog).

// maxBrokerUsername bounds a broker username (the catalog accepts up to 64).
const maxBrokerUsername = 64

// brokerUsername returns the request's Basic username when it is usable.
func brokerUsername(r *http.Request) (string, bool) {
	user, _, ok := r.BasicAuth()
	if !ok || user == "" || len(user) > maxBrokerUsername {
		return "", false
	}
	for _, c := range user {
		if c > unicode.MaxASCII || !unicode.IsPrint(c) {
			return "", false
		}
	}
	return user, true
}

// BrokerSubject is the audit subject of an OSB call by broker username user.
func BrokerSubject(user string) string { return "osb:" + user }

// brokerPrincipal is who an OSB call is audited as: the catalog forwards
// OSB calls with the credential's tenant as tenant-member (which tenant is
// the catalog's to know, so the entry has none).
func brokerPrincipal(r *http.Request) (tenancy.Principal, bool) {
	user, ok := brokerUsername(r)
	if !ok {
		return tenancy.Principal{}, false
	}
	return tenancy.Principal{Role: tenancy.RoleTenantMember, Subject: BrokerSubject(user)}, true
}

// brokerGuard throttles, rate limits and counts the failures of OSB calls.
func (a *api) brokerGuard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		addr := a.clientAddr(r)
		if d, blocked := a.Throttle.Blocked(addr); blocked {
			a.brokerTooManyFailures(w, d)
			return
		}
		// Every OSB call reaches the catalog's credential lookup, so the
		// throttle is asked each time (OSB traffic is light).
		var te *auththrottle.ThrottledError
		if err := a.checkFailures(r.Context(), addr); errors.As(err, &te) {
			a.brokerTooManyFailures(w, te.RetryAfter)
			return
		}
		user, ok := brokerUsername(r)
		if !ok {
			a.countFailure(r.Context(), addr)
			w.Header().Set("WWW-Authenticate", `Basic realm="canopy-osb", charset="UTF-8"`)
			brokerError(w, http.StatusUnauthorized, "Unauthorized", "missing or invalid broker credentials")
			return
		}
		lim := ratelimit.Limit{RPS: a.DefaultLimit.RPS, Burst: a.DefaultLimit.Burst}
		if !a.allow(w, r, "osb:"+user, lim) {
			brokerError(w, http.StatusTooManyRequests, "TooManyRequests", "rate limit exceeded; retry after the time in Retry-After")
			return
		}
		ww := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
		next.ServeHTTP(ww, r)
		if ww.Status() == http.StatusUnauthorized {
			a.countFailure(r.Context(), addr)
		}
	})
}

func (a *api) brokerTooManyFailures(w http.ResponseWriter, retryAfter time.Duration) {
	w.Header().Set("Retry-After", strconv.Itoa(max(1, ceilSeconds(retryAfter))))
	brokerError(w, http.StatusTooManyRequests, "TooManyRequests", "too many failed authentications from this address; retry after the time in Retry-After")
}

// brokerError answers in the OSB error format, which broker clients parse.
func brokerError(w http.ResponseWriter, status int, code, description string) {
	httpx.WriteJSON(w, status, map[string]string{"error": code, "description": description})
}
