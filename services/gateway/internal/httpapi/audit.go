package httpapi

import (
	"net/http"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"

	"github.com/canopy-platform/canopy/libs/tenancy"
	"github.com/canopy-platform/canopy/services/gateway/internal/audit"
)

// tenantParam is the chi URL parameter naming the tenant a route acts on.
const tenantParam = "tenantID"

// auditRequests records mutating requests that carry a tenancy.Principal
// in rec.
func auditRequests(rec *audit.Recorder) func(http.Handler) http.Handler {
	return auditRequestsAs(rec, func(r *http.Request) (tenancy.Principal, bool) { return tenancy.PrincipalFrom(r.Context()) })
}

// auditRequestsAs is auditRequests for requests whose caller is not in the
// context (the OSB API, authenticated by its upstream): who returns the
// principal to record, or false to record nothing. The entry is written
// synchronously after the handler, so a request is never acknowledged to a
// later reader of the log before its entry exists.
func auditRequestsAs(rec *audit.Recorder, who func(*http.Request) (tenancy.Principal, bool)) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			switch r.Method {
			case http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete:
			default:
				next.ServeHTTP(w, r)
				return
			}
			p, ok := who(r)
			if !ok {
				next.ServeHTTP(w, r)
				return
			}
			ww := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
			next.ServeHTTP(ww, r)
			status := ww.Status()
			if status == 0 {
				status = http.StatusOK
			}
			e := audit.Entry{KeyID: audit.KeyIDOf(p), Tenant: p.Tenant, Role: p.Role, Method: r.Method,
				Path: r.URL.Path, Status: status, RequestID: middleware.GetReqID(r.Context())}
			if e.Tenant == "" {
				if id, err := tenancy.Parse(chi.URLParam(r, tenantParam)); err == nil {
					e.Tenant = id
				}
			}
			rec.Record(r.Context(), e)
		})
	}
}
