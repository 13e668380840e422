package tenancy

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// Header names the gateway sets on every request it forwards to a service.
// Services must only trust them after Middleware verified the signature.
const (
	// RoleHeader carries the caller's Role.
	RoleHeader = "X-Canopy-Role"
	// SubjectHeader carries who the caller is (e.g. "apikey:<id>").
	SubjectHeader = "X-Canopy-Subject"
	// AuthTimeHeader carries the signing time as Unix seconds.
	AuthTimeHeader = "X-Canopy-Auth-Time"
	// SignatureHeader carries the hex HMAC-SHA256 over tenant|role|subject|time.
	SignatureHeader = "X-Canopy-Auth-Signature"
	// HeaderPrefix is the prefix of every header the gateway owns; the gateway
	// strips incoming headers with this prefix before signing.
	HeaderPrefix = "X-Canopy-"
)

// DefaultMaxSkew is how old (or how far in the future) a signature may be
// before Middleware rejects it.
const DefaultMaxSkew = 5 * time.Minute

// Role is what a caller may do, see Can.
type Role string

// The roles of Canopy.
const (
	// RolePlatformAdmin operates the platform; it may have no tenant.
	RolePlatformAdmin Role = "platform-admin"
	// RoleTenantAdmin manages one tenant, including its API keys.
	RoleTenantAdmin Role = "tenant-admin"
	// RoleTenantMember creates and changes one tenant's resources.
	RoleTenantMember Role = "tenant-member"
	// RoleTenantViewer only reads one tenant's resources.
	RoleTenantViewer Role = "tenant-viewer"
)

// Roles lists every role, most privileged first.
func Roles() []Role {
	return []Role{RolePlatformAdmin, RoleTenantAdmin, RoleTenantMember, RoleTenantViewer}
}

// ErrInvalidRole is returned for a role that is not one of Roles.
var ErrInvalidRole = errors.New("invalid role")

// ParseRole validates s as a Role.
func ParseRole(s string) (Role, error) {
	switch r := Role(s); r {
	case RolePlatformAdmin, RoleTenantAdmin, RoleTenantMember, RoleTenantViewer:
		return r, nil
	}
	return "", fmt.Errorf("%w: %q", ErrInvalidRole, s)
}

// Valid reports whether r is a known role.
func (r Role) Valid() bool {
	_, err := ParseRole(string(r))
	return err == nil
}

// Principal is an authenticated caller as established by the gateway.
type Principal struct {
	// Tenant the caller belongs to; empty only for a platform-admin.
	Tenant ID
	// Role of the caller.
	Role Role
	// Subject names the credential, e.g. "apikey:01H...".
	Subject string
}

// ErrInvalidPrincipal is returned by Validate for an inconsistent Principal.
var ErrInvalidPrincipal = errors.New("invalid principal")

// Validate checks that the role is known, the tenant well formed, and that
// every role but platform-admin has a tenant.
func (p Principal) Validate() error {
	if !p.Role.Valid() {
		return fmt.Errorf("%w: role %q", ErrInvalidPrincipal, p.Role)
	}
	if p.Tenant == "" {
		if p.Role != RolePlatformAdmin {
			return fmt.Errorf("%w: role %s needs a tenant", ErrInvalidPrincipal, p.Role)
		}
		return nil
	}
	if _, err := Parse(string(p.Tenant)); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidPrincipal, err)
	}
	return nil
}

type principalKey struct{}

// WithPrincipal returns a context carrying p and, when p has one, its tenant.
func WithPrincipal(ctx context.Context, p Principal) context.Context {
	ctx = context.WithValue(ctx, principalKey{}, p)
	if p.Tenant != "" {
		ctx = WithTenant(ctx, p.Tenant)
	}
	return ctx
}

// PrincipalFrom returns the Principal in ctx, if any.
func PrincipalFrom(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(Principal)
	return p, ok
}

// Sign sets the identity headers for p on h, signed with secret at now.
// It overwrites any identity headers already present.
func Sign(h http.Header, secret []byte, p Principal, now time.Time) {
	ts := strconv.FormatInt(now.Unix(), 10)
	setHeader(h, HTTPHeader, string(p.Tenant))
	setHeader(h, RoleHeader, string(p.Role))
	setHeader(h, SubjectHeader, p.Subject)
	setHeader(h, AuthTimeHeader, ts)
	setHeader(h, SignatureHeader, signature(secret, string(p.Tenant), string(p.Role), p.Subject, ts))
}

// setHeader sets a canonical header key without re-canonicalising it.
func setHeader(h http.Header, k, v string) {
	if v == "" {
		delete(h, k)
		return
	}
	h[k] = []string{v}
}

func signature(secret []byte, tenant, role, subject, ts string) string {
	m := hmac.New(sha256.New, secret)
	// Tenant ids and roles cannot contain '|' and the time is numeric, so the
	// only free-form field (subject) cannot shift the field boundaries.
	m.Write([]byte(tenant))
	m.Write([]byte{'|'})
	m.Write([]byte(role))
	m.Write([]byte{'|'})
	m.Write([]byte(subject))
	m.Write([]byte{'|'})
	m.Write([]byte(ts))
	var sum [sha256.Size]byte
	return hex.EncodeToString(m.Sum(sum[:0]))
}

// ErrUnauthenticated is returned by Verify for missing, stale or forged identity headers.
var ErrUnauthenticated = errors.New("unauthenticated")

// Verify checks the identity headers in h against secret at now, accepting
// signatures at most maxSkew old or in the future, and returns the Principal.
func Verify(h http.Header, secret []byte, now time.Time, maxSkew time.Duration) (Principal, error) {
	sig := h.Get(SignatureHeader)
	ts := h.Get(AuthTimeHeader)
	if sig == "" || ts == "" {
		return Principal{}, fmt.Errorf("%w: missing identity headers", ErrUnauthenticated)
	}
	unix, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return Principal{}, fmt.Errorf("%w: malformed auth time", ErrUnauthenticated)
	}
	if d := now.Sub(time.Unix(unix, 0)); d > maxSkew || d < -maxSkew {
		return Principal{}, fmt.Errorf("%w: signature outside freshness window", ErrUnauthenticated)
	}
	p := Principal{Tenant: ID(h.Get(HTTPHeader)), Role: Role(h.Get(RoleHeader)), Subject: h.Get(SubjectHeader)}
	want := signature(secret, string(p.Tenant), string(p.Role), p.Subject, ts)
	if !hmac.Equal([]byte(want), []byte(sig)) {
		return Principal{}, fmt.Errorf("%w: bad signature", ErrUnauthenticated)
	}
	if err := p.Validate(); err != nil {
		return Principal{}, fmt.Errorf("%w: %w", ErrUnauthenticated, err)
	}
	return p, nil
}

// Middleware verifies the gateway's identity headers on every request and puts
// the Principal (and its tenant) in the request context. Requests without a
// valid, fresh signature get a 401 application/problem+json.
func Middleware(secret []byte) func(http.Handler) http.Handler {
	return middleware(secret, time.Now, DefaultMaxSkew)
}

func middleware(secret []byte, now func() time.Time, maxSkew time.Duration) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			p, err := Verify(r.Header, secret, now(), maxSkew)
			if err != nil {
				writeUnauthorized(w, r)
				return
			}
			next.ServeHTTP(w, r.WithContext(WithPrincipal(r.Context(), p)))
		})
	}
}

// writeUnauthorized writes a minimal RFC 9457 problem. It does not use
// libs/httpx so that httpx may depend on tenancy without a cycle.
func writeUnauthorized(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(http.StatusUnauthorized)
	_ = json.NewEncoder(w).Encode(struct {
		Type     string `json:"type"`
		Title    string `json:"title"`
		Status   int    `json:"status"`
		Detail   string `json:"detail"`
		Instance string `json:"instance,omitempty"`
	}{
		Type:     "about:blank",
		Title:    "Unauthorized",
		Status:   http.StatusUnauthorized,
		Detail:   "missing or invalid gateway identity",
		Instance: r.URL.Path,
	})
}
