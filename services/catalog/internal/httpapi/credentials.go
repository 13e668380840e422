package httpapi

import (
	"errors"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/canopy-platform/canopy/libs/httpx"
	"github.com/canopy-platform/canopy/libs/paging"
	"github.com/canopy-platform/canopy/libs/tenancy"
	"github.com/canopy-platform/canopy/services/catalog/internal/brokercred"
	"github.com/canopy-platform/canopy/services/catalog/internal/mysqlrepo"
	"github.com/canopy-platform/canopy/services/catalog/internal/plan"
	"github.com/canopy-platform/canopy/services/catalog/internal/tenantclient"
)

type credentialCursor struct {
	CreatedAt time.Time `json:"t"`
	ID        string    `json:"i"`
}

// createCredential answers POST /broker-credentials (platform-admin). The
// password is in this response only. A replay under the same
// Idempotency-Key returns the credential without the password (it is not
// stored); revoke it and issue a new one if the password was lost.
func (h *Handler) createCredential(w http.ResponseWriter, r *http.Request) {
	body, err := readBody(r)
	if err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	idem, done := h.startIdempotent(w, r, "create-broker-credential", body)
	if done {
		return
	}
	var req credentialRequest
	if err := httpx.DecodeJSON(w, r, &req); err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	if req.Name == nil {
		httpx.WriteProblem(w, r, httpx.Unprocessable("required fields are missing", httpx.FieldError{Field: "name", Reason: "is required"}))
		return
	}
	p, _ := tenancy.PrincipalFrom(r.Context())
	c, password, err := brokercred.Issue(*req.Name, deref(req.Tenant), p.Subject, h.now())
	var ve *brokercred.ValidationError
	if errors.As(err, &ve) {
		fields := make([]httpx.FieldError, 0, len(ve.Violations))
		for _, v := range ve.Violations {
			fields = append(fields, httpx.FieldError{Field: v.Field, Reason: v.Reason})
		}
		httpx.WriteProblem(w, r, httpx.Unprocessable("the broker credential is invalid", fields...))
		return
	}
	if err != nil {
		h.writeInternal(w, r, err)
		return
	}
	if !h.tenantExists(w, r, c.Tenant) {
		return
	}
	view := toCredentialJSON(c)
	stored, err := marshal(view) // what a replay returns: no password
	if err != nil {
		h.writeInternal(w, r, err)
		return
	}
	view.Password = password
	resp, err := marshal(view)
	if err != nil {
		h.writeInternal(w, r, err)
		return
	}
	err = h.repo.CreateCredential(r.Context(), c, idem.response(http.StatusCreated, stored))
	switch {
	case err == nil:
		w.Header().Set("Location", Prefix+"/broker-credentials/"+c.ID)
		w.Header().Set("Cache-Control", "no-store")
		writeRaw(w, http.StatusCreated, resp)
	case errors.Is(err, mysqlrepo.ErrIdempotencyKeyUsed):
		if !h.replay(w, r, idem) {
			h.writeInternal(w, r, err)
		}
	default:
		h.writeInternal(w, r, err)
	}
}

// tenantExists checks, before anything is written, that the gateway knows
// the tenant a credential is bound to: a credential of an unknown tenant
// would let a broker order for nobody. It answers the refusal itself.
func (h *Handler) tenantExists(w http.ResponseWriter, r *http.Request, tenant tenancy.ID) bool {
	if tenant == "" || h.tenants == nil {
		return true
	}
	err := h.tenants.Check(r.Context(), tenant)
	switch {
	case err == nil:
		return true
	case errors.Is(err, tenantclient.ErrUnknownTenant):
		httpx.WriteProblem(w, r, httpx.Unprocessable("the broker credential is invalid",
			httpx.FieldError{Field: "tenant", Reason: "is not a tenant known to the gateway"}))
	default:
		h.logger.WarnContext(r.Context(), "check broker credential tenant", "tenant", tenant, "err", err)
		w.Header().Set("Retry-After", "5")
		httpx.WriteProblem(w, r, httpx.NewProblem(http.StatusServiceUnavailable, "the gateway could not confirm the tenant; try again"))
	}
	return false
}

// listCredentials answers GET /broker-credentials (platform-admin).
func (h *Handler) listCredentials(w http.ResponseWriter, r *http.Request) {
	var cur credentialCursor
	limit, has, err := paging.Parse(r.URL.Query(), &cur)
	if err != nil {
		httpx.WriteProblem(w, r, paging.Problem(err))
		return
	}
	var after *mysqlrepo.CredentialCursor
	if has {
		after = &mysqlrepo.CredentialCursor{CreatedAt: cur.CreatedAt, ID: cur.ID}
	}
	creds, err := h.repo.ListCredentials(r.Context(), after, limit+1)
	if err != nil {
		h.writeInternal(w, r, err)
		return
	}
	creds, more := paging.Split(creds, limit)
	out := listJSON[credentialJSON]{Items: make([]credentialJSON, 0, len(creds))}
	for _, c := range creds {
		out.Items = append(out.Items, toCredentialJSON(c))
	}
	if more {
		last := creds[len(creds)-1]
		out.NextCursor = paging.Encode(credentialCursor{CreatedAt: last.CreatedAt, ID: last.ID})
	}
	httpx.WriteJSON(w, http.StatusOK, out)
}

// getCredential answers GET /broker-credentials/{id} (platform-admin).
func (h *Handler) getCredential(w http.ResponseWriter, r *http.Request) {
	id := chi.URLParam(r, "id")
	if !plan.ValidID(id) {
		httpx.WriteProblem(w, r, notFound("broker credential"))
		return
	}
	c, err := h.repo.GetCredential(r.Context(), id)
	switch {
	case err == nil:
		httpx.WriteJSON(w, http.StatusOK, toCredentialJSON(c))
	case errors.Is(err, mysqlrepo.ErrNotFound):
		httpx.WriteProblem(w, r, notFound("broker credential"))
	default:
		h.writeInternal(w, r, err)
	}
}

// revokeCredential answers DELETE /broker-credentials/{id} (platform-admin):
// the credential stops authenticating at once; revoking twice is a no-op.
func (h *Handler) revokeCredential(w http.ResponseWriter, r *http.Request) {
	id := chi.URLParam(r, "id")
	if !plan.ValidID(id) {
		httpx.WriteProblem(w, r, notFound("broker credential"))
		return
	}
	err := h.repo.RevokeCredential(r.Context(), id, h.now())
	switch {
	case err == nil:
		w.WriteHeader(http.StatusNoContent)
	case errors.Is(err, mysqlrepo.ErrNotFound):
		httpx.WriteProblem(w, r, notFound("broker credential"))
	default:
		h.writeInternal(w, r, err)
	}
}
