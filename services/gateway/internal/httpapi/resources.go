package httpapi

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/canopy-platform/canopy/libs/httpx"
	"github.com/canopy-platform/canopy/libs/paging"
	"github.com/canopy-platform/canopy/libs/tenancy"
	"github.com/canopy-platform/canopy/services/gateway/internal/apikey"
	"github.com/canopy-platform/canopy/services/gateway/internal/tenant"
)

// --- transport types ---

type rateLimitJSON struct {
	RequestsPerSecond *int  `json:"requests_per_second"`
	Burst             *int  `json:"burst"`
	Default           *bool `json:"default,omitempty"`
}

type quotaJSON struct {
	MaxInstances *int64   `json:"max_instances"`
	MaxVCPU      *float64 `json:"max_vcpu"`
	MaxMemoryMB  *int64   `json:"max_memory_mb"`
	MaxStorageGB *int64   `json:"max_storage_gb"`
}

type tenantJSON struct {
	ID        string        `json:"id"`
	Name      string        `json:"name"`
	RateLimit rateLimitJSON `json:"rate_limit"`
	Quota     quotaJSON     `json:"quota"`
	CreatedAt time.Time     `json:"created_at"`
}

type createTenantJSON struct {
	ID        *string        `json:"id"`
	Name      *string        `json:"name"`
	RateLimit *rateLimitJSON `json:"rate_limit"`
	Quota     *quotaJSON     `json:"quota"`
}

type keyJSON struct {
	ID         string     `json:"id"`
	TenantID   string     `json:"tenant_id"`
	Role       string     `json:"role"`
	Name       string     `json:"name"`
	CreatedAt  time.Time  `json:"created_at"`
	LastUsedAt *time.Time `json:"last_used_at"`
	RevokedAt  *time.Time `json:"revoked_at"`
	Key        string     `json:"key,omitempty"`
}

type createKeyJSON struct {
	Name *string `json:"name"`
	Role *string `json:"role"`
}

type auditJSON struct {
	ID        string    `json:"id"`
	At        time.Time `json:"at"`
	KeyID     string    `json:"key_id"`
	TenantID  *string   `json:"tenant_id"`
	Role      string    `json:"role"`
	Method    string    `json:"method"`
	Path      string    `json:"path"`
	Status    int       `json:"status"`
	RequestID string    `json:"request_id"`
}

type page[T any] struct {
	Items      []T     `json:"items"`
	NextCursor *string `json:"next_cursor"`
}

func (a *api) toTenantJSON(t tenant.Tenant) tenantJSON {
	rl, def := t.RateLimit, false
	if rl.IsZero() {
		rl, def = a.DefaultLimit, true
	}
	return tenantJSON{ID: string(t.ID), Name: t.Name, CreatedAt: t.CreatedAt.UTC(),
		RateLimit: rateLimitJSON{RequestsPerSecond: &rl.RPS, Burst: &rl.Burst, Default: &def},
		Quota:     toQuotaJSON(t.Quota)}
}

func toQuotaJSON(q tenancy.Quota) quotaJSON {
	return quotaJSON{MaxInstances: &q.MaxInstances, MaxVCPU: &q.MaxVCPU, MaxMemoryMB: &q.MaxMemoryMB, MaxStorageGB: &q.MaxStorageGB}
}

func toKeyJSON(k apikey.Key) keyJSON {
	j := keyJSON{ID: k.ID, TenantID: string(k.Tenant), Role: string(k.Role), Name: k.Name, CreatedAt: k.CreatedAt.UTC()}
	if k.LastUsedAt != nil {
		t := k.LastUsedAt.UTC()
		j.LastUsedAt = &t
	}
	if k.RevokedAt != nil {
		t := k.RevokedAt.UTC()
		j.RevokedAt = &t
	}
	return j
}

// --- validation helpers ---

func (q *quotaJSON) domain(prefix string) (tenancy.Quota, []httpx.FieldError) {
	var errs []httpx.FieldError
	need := func(name string, ok bool) {
		if !ok {
			errs = append(errs, httpx.FieldError{Field: prefix + name, Reason: "is required"})
		}
	}
	need("max_instances", q.MaxInstances != nil)
	need("max_vcpu", q.MaxVCPU != nil)
	need("max_memory_mb", q.MaxMemoryMB != nil)
	need("max_storage_gb", q.MaxStorageGB != nil)
	if errs != nil {
		return tenancy.Quota{}, errs
	}
	out := tenancy.Quota{MaxInstances: *q.MaxInstances, MaxVCPU: *q.MaxVCPU, MaxMemoryMB: *q.MaxMemoryMB, MaxStorageGB: *q.MaxStorageGB}
	neg := func(name string, bad bool) {
		if bad {
			errs = append(errs, httpx.FieldError{Field: prefix + name, Reason: "must be zero (no limit) or positive"})
		}
	}
	neg("max_instances", out.MaxInstances < 0)
	neg("max_vcpu", out.MaxVCPU < 0)
	neg("max_memory_mb", out.MaxMemoryMB < 0)
	neg("max_storage_gb", out.MaxStorageGB < 0)
	return out, errs
}

func (j *rateLimitJSON) domain(prefix string) (tenant.RateLimit, []httpx.FieldError) {
	var errs []httpx.FieldError
	if j.Default != nil {
		errs = append(errs, httpx.FieldError{Field: prefix + "default", Reason: "is read-only"})
	}
	check := func(name string, v *int) int {
		switch {
		case v == nil:
			errs = append(errs, httpx.FieldError{Field: prefix + name, Reason: "is required"})
		case *v < 1 || *v > tenant.MaxRate:
			errs = append(errs, httpx.FieldError{Field: prefix + name, Reason: fmt.Sprintf("must be between 1 and %d", tenant.MaxRate)})
		default:
			return *v
		}
		return 0
	}
	rl := tenant.RateLimit{RPS: check("requests_per_second", j.RequestsPerSecond), Burst: check("burst", j.Burst)}
	return rl, errs
}

// pageParams reads ?limit= and a key ?cursor= (libs/paging); a refusal is the 400 problem.
func pageParams(r *http.Request) (limit int, cursor string, err error) {
	limit, cursor, err = paging.ParseKey(r.URL.Query())
	if err != nil {
		return 0, "", paging.Problem(err)
	}
	return limit, cursor, nil
}

func encodeCursor(s string) *string {
	c := paging.EncodeKey(s)
	return &c
}

// --- authorization ---

var errNotFound = httpx.NewProblem(http.StatusNotFound, "no such resource")

func notFound() *httpx.Problem { p := *errNotFound; return &p }

func forbidden() *httpx.Problem {
	return httpx.NewProblem(http.StatusForbidden, "your role may not perform this action")
}

// onTenant authorizes action on the tenant named in the path and returns a
// context scoped to it. Another tenant's resources answer 404 (existence is
// not revealed); the caller's own tenant with a role that may not act, 403.
// For a platform-admin the tenant must exist.
func (a *api) onTenant(r *http.Request, action tenancy.Action) (*http.Request, error) {
	p, ok := tenancy.PrincipalFrom(r.Context())
	if !ok {
		return nil, httpx.NewProblem(http.StatusUnauthorized, "a valid API key is required (Authorization: Bearer <key>)")
	}
	id, err := tenancy.Parse(chi.URLParam(r, tenantParam))
	if err != nil {
		return nil, notFound()
	}
	if p.Role != tenancy.RolePlatformAdmin && p.Tenant != id {
		return nil, notFound()
	}
	if !tenancy.Can(p.Role, action) {
		return nil, forbidden()
	}
	r = r.WithContext(tenancy.WithTenant(r.Context(), id))
	if p.Role == tenancy.RolePlatformAdmin {
		if _, err := a.Store.Tenant(r.Context()); err != nil {
			if errors.Is(err, tenant.ErrNotFound) {
				return nil, notFound()
			}
			return nil, err
		}
	}
	return r, nil
}

// platform authorizes a platform operation.
func platform(r *http.Request) error {
	p, _ := tenancy.PrincipalFrom(r.Context())
	if !tenancy.Can(p.Role, tenancy.ActionAdmin) {
		return forbidden()
	}
	return nil
}

// --- tenants ---

func (a *api) createTenant(w http.ResponseWriter, r *http.Request) {
	if err := platform(r); err != nil {
		a.fail(w, r, err)
		return
	}
	var in createTenantJSON
	if err := httpx.DecodeJSON(w, r, &in); err != nil {
		a.fail(w, r, err)
		return
	}
	var errs []httpx.FieldError
	t := tenant.Tenant{CreatedAt: a.Now().UTC().Truncate(time.Microsecond)}
	if in.ID == nil {
		errs = append(errs, httpx.FieldError{Field: "id", Reason: "is required"})
	} else if id, err := tenancy.Parse(*in.ID); err != nil {
		errs = append(errs, httpx.FieldError{Field: "id", Reason: "must be a slug: 1-63 characters of a-z, 0-9 and '-', starting with a letter or digit"})
	} else {
		t.ID = id
	}
	if in.Name == nil {
		errs = append(errs, httpx.FieldError{Field: "name", Reason: "is required"})
	} else if err := tenant.ValidateName(*in.Name); err != nil {
		errs = append(errs, httpx.FieldError{Field: "name", Reason: err.Error()})
	} else {
		t.Name = *in.Name
	}
	if in.RateLimit != nil {
		rl, fe := in.RateLimit.domain("rate_limit.")
		errs = append(errs, fe...)
		t.RateLimit = rl
	}
	if in.Quota != nil {
		q, fe := in.Quota.domain("quota.")
		errs = append(errs, fe...)
		t.Quota = q
	}
	if errs != nil {
		a.fail(w, r, httpx.BadRequest("invalid tenant", errs...))
		return
	}
	if err := a.Store.CreateTenant(r.Context(), t); err != nil {
		if errors.Is(err, tenant.ErrExists) {
			p := httpx.NewProblem(http.StatusConflict, "a tenant with this id already exists")
			p.Errors = []httpx.FieldError{{Field: "id", Reason: "is taken"}}
			a.fail(w, r, p)
			return
		}
		a.fail(w, r, err)
		return
	}
	w.Header().Set("Location", "/api/v1/tenants/"+string(t.ID))
	httpx.WriteJSON(w, http.StatusCreated, a.toTenantJSON(t))
}

func (a *api) listTenants(w http.ResponseWriter, r *http.Request) {
	if err := platform(r); err != nil {
		a.fail(w, r, err)
		return
	}
	limit, cursor, err := pageParams(r)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	ts, err := a.Store.ListTenants(r.Context(), cursor, limit+1)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	ts, more := paging.Split(ts, limit)
	out := page[tenantJSON]{Items: make([]tenantJSON, 0, len(ts))}
	for _, t := range ts {
		out.Items = append(out.Items, a.toTenantJSON(t))
	}
	if more {
		out.NextCursor = encodeCursor(string(ts[len(ts)-1].ID))
	}
	httpx.WriteJSON(w, http.StatusOK, out)
}

func (a *api) getTenant(w http.ResponseWriter, r *http.Request) {
	r2, err := a.onTenant(r, tenancy.ActionRead)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	t, err := a.Store.Tenant(r2.Context())
	if errors.Is(err, tenant.ErrNotFound) {
		err = notFound()
	}
	if err != nil {
		a.fail(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, a.toTenantJSON(t))
}

func (a *api) getQuota(w http.ResponseWriter, r *http.Request) {
	r2, err := a.onTenant(r, tenancy.ActionRead)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	t, err := a.Store.Tenant(r2.Context())
	if errors.Is(err, tenant.ErrNotFound) {
		err = notFound()
	}
	if err != nil {
		a.fail(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, toQuotaJSON(t.Quota))
}

func (a *api) putQuota(w http.ResponseWriter, r *http.Request) {
	r2, err := a.onTenant(r, tenancy.ActionAdmin)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	var in quotaJSON
	if err := httpx.DecodeJSON(w, r, &in); err != nil {
		a.fail(w, r, err)
		return
	}
	q, errs := in.domain("")
	if errs != nil {
		a.fail(w, r, httpx.BadRequest("invalid quota", errs...))
		return
	}
	if err := a.Store.SetQuota(r2.Context(), q, a.Now().UTC()); err != nil {
		a.fail(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, toQuotaJSON(q))
}

func (a *api) getRateLimit(w http.ResponseWriter, r *http.Request) {
	r2, err := a.onTenant(r, tenancy.ActionRead)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	t, err := a.Store.Tenant(r2.Context())
	if errors.Is(err, tenant.ErrNotFound) {
		err = notFound()
	}
	if err != nil {
		a.fail(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, a.toTenantJSON(t).RateLimit)
}

func (a *api) putRateLimit(w http.ResponseWriter, r *http.Request) {
	r2, err := a.onTenant(r, tenancy.ActionAdmin)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	var in rateLimitJSON
	if err := httpx.DecodeJSON(w, r, &in); err != nil {
		a.fail(w, r, err)
		return
	}
	rl, errs := in.domain("")
	if errs != nil {
		a.fail(w, r, httpx.BadRequest("invalid rate limit", errs...))
		return
	}
	if err := a.Store.SetRateLimit(r2.Context(), rl, a.Now().UTC()); err != nil {
		a.fail(w, r, err)
		return
	}
	id, _ := tenancy.FromContext(r2.Context())
	a.forgetLimit(id)
	def := false
	httpx.WriteJSON(w, http.StatusOK, rateLimitJSON{RequestsPerSecond: &rl.RPS, Burst: &rl.Burst, Default: &def})
}

// --- api keys ---

func (a *api) createKey(w http.ResponseWriter, r *http.Request) {
	r2, err := a.onTenant(r, tenancy.ActionManageKeys)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	var in createKeyJSON
	if err := httpx.DecodeJSON(w, r, &in); err != nil {
		a.fail(w, r, err)
		return
	}
	p, _ := tenancy.PrincipalFrom(r.Context())
	var errs []httpx.FieldError
	var name string
	var role tenancy.Role
	if in.Name == nil {
		errs = append(errs, httpx.FieldError{Field: "name", Reason: "is required"})
	} else if err := apikey.ValidateName(*in.Name); err != nil {
		errs = append(errs, httpx.FieldError{Field: "name", Reason: err.Error()})
	} else {
		name = *in.Name
	}
	if in.Role == nil {
		errs = append(errs, httpx.FieldError{Field: "role", Reason: "is required"})
	} else if rl, err := tenancy.ParseRole(*in.Role); err != nil || rl == tenancy.RolePlatformAdmin {
		errs = append(errs, httpx.FieldError{Field: "role", Reason: "must be one of tenant-admin, tenant-member, tenant-viewer"})
	} else if !tenancy.CanGrant(p.Role, rl) {
		errs = append(errs, httpx.FieldError{Field: "role", Reason: "you may not grant this role"})
	} else {
		role = rl
	}
	if errs != nil {
		a.fail(w, r, httpx.BadRequest("invalid API key", errs...))
		return
	}
	id, _ := tenancy.FromContext(r2.Context())
	k, token, err := apikey.New(id, role, name, a.Now().UTC().Truncate(time.Microsecond))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if err := a.Store.CreateKey(r2.Context(), k); err != nil {
		a.fail(w, r, err)
		return
	}
	out := toKeyJSON(k)
	out.Key = token
	w.Header().Set("Location", "/api/v1/tenants/"+string(id)+"/api-keys/"+k.ID)
	w.Header().Set("Cache-Control", "no-store")
	httpx.WriteJSON(w, http.StatusCreated, out)
}

func (a *api) listKeys(w http.ResponseWriter, r *http.Request) {
	r2, err := a.onTenant(r, tenancy.ActionManageKeys)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	limit, cursor, err := pageParams(r)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	ks, err := a.Store.Keys(r2.Context(), cursor, limit+1)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	ks, more := paging.Split(ks, limit)
	out := page[keyJSON]{Items: make([]keyJSON, 0, len(ks))}
	for _, k := range ks {
		out.Items = append(out.Items, toKeyJSON(k))
	}
	if more {
		out.NextCursor = encodeCursor(ks[len(ks)-1].ID)
	}
	httpx.WriteJSON(w, http.StatusOK, out)
}

func (a *api) revokeKey(w http.ResponseWriter, r *http.Request) {
	r2, err := a.onTenant(r, tenancy.ActionManageKeys)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	keyID := chi.URLParam(r, "keyID")
	if !apikey.ValidID(keyID) {
		a.fail(w, r, notFound())
		return
	}
	k, err := a.Store.RevokeKey(r2.Context(), keyID, a.Now().UTC())
	if errors.Is(err, apikey.ErrNotFound) {
		err = notFound()
	}
	if err != nil {
		a.fail(w, r, err)
		return
	}
	a.Auth.Invalidate(k.ID)
	w.WriteHeader(http.StatusNoContent)
}

// --- audit ---

func (a *api) listAudit(w http.ResponseWriter, r *http.Request) {
	if err := platform(r); err != nil {
		a.fail(w, r, err)
		return
	}
	limit, cursor, err := pageParams(r)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	var before uint64
	if cursor != "" {
		if before, err = strconv.ParseUint(cursor, 10, 64); err != nil || before == 0 {
			a.fail(w, r, paging.Problem(&paging.FieldError{Field: "cursor", Reason: "is not a cursor this endpoint issued"}))
			return
		}
	}
	var tid tenancy.ID
	if s := r.URL.Query().Get("tenant"); s != "" {
		if tid, err = tenancy.Parse(s); err != nil {
			a.fail(w, r, httpx.BadRequest("invalid query parameter", httpx.FieldError{Field: "tenant", Reason: "must be a tenant id"}))
			return
		}
	}
	es, err := a.Store.ListAudit(r.Context(), tid, before, limit+1)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	es, more := paging.Split(es, limit)
	out := page[auditJSON]{Items: make([]auditJSON, 0, len(es))}
	if more {
		out.NextCursor = encodeCursor(strconv.FormatUint(es[len(es)-1].ID, 10))
	}
	for _, e := range es {
		j := auditJSON{ID: strconv.FormatUint(e.ID, 10), At: e.At.UTC(), KeyID: e.KeyID, Role: string(e.Role), Method: e.Method,
			Path: e.Path, Status: e.Status, RequestID: e.RequestID}
		if e.Tenant != "" {
			s := string(e.Tenant)
			j.TenantID = &s
		}
		out.Items = append(out.Items, j)
	}
	httpx.WriteJSON(w, http.StatusOK, out)
}
