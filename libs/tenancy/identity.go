package tenancy

import (
	"context"
	"errors"
	"fmt"
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
	// NonceHeader carries a value unique per signed request, so that two
	// identical requests have different signatures and a replay is detectable.
	NonceHeader = "X-Canopy-Auth-Nonce"
	// SignatureHeader carries the hex HMAC-SHA256 over the request (method,
	// target, body hash), the audience, the principal, the time and the nonce;
	// see Signer.
	SignatureHeader = "X-Canopy-Auth-Signature"
	// HeaderPrefix is the prefix of every header the gateway owns; the gateway
	// strips incoming headers with this prefix before signing.
	HeaderPrefix = "X-Canopy-"
)

// Audiences: the service a signed request is meant for. A verifier accepts
// only signatures made for its own audience.
const (
	AudienceGateway      = "gateway"
	AudienceCatalog      = "catalog"
	AudienceScheduling   = "scheduling"
	AudienceProvisioning = "provisioning"
	AudienceHealthcheck  = "healthcheck"
	AudienceFailover     = "failover"
	AudienceRouter       = "router"
	AudienceCDC          = "cdc"
	AudienceMetering     = "metering"
	AudienceAlerting     = "alerting"
	AudienceBackup       = "backup"
)

// DefaultValidity is how long after its signing time a signature is accepted.
// It is short because a signed request is sent at once (retries re-sign).
const DefaultValidity = 30 * time.Second

// DefaultClockSkew is how far apart the signer's and verifier's clocks may be.
const DefaultClockSkew = 5 * time.Second

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
