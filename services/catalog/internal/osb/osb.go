// Package osb serves the Open Service Broker API 2.17 under /v2 for the
// catalog: GET /v2/catalog rendered from the same plans as the Canopy API,
// behind HTTP Basic authentication with broker credentials and the
// X-Broker-API-Version check. Provisioning and binding routes are not here;
// they come with the provisioning service. See docs/osb.md.
package osb

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"regexp"
	"strconv"

	"github.com/go-chi/chi/v5"

	"github.com/canopy-platform/canopy/libs/tenancy"
	"github.com/canopy-platform/canopy/services/catalog/internal/brokercred"
	"github.com/canopy-platform/canopy/services/catalog/internal/mysqlrepo"
	"github.com/canopy-platform/canopy/services/catalog/internal/plan"
)

// Header names of the OSB API.
const (
	VersionHeader             = "X-Broker-API-Version"
	RequestIdentityHeader     = "X-Broker-API-Request-Identity"
	OriginatingIdentityHeader = "X-Broker-API-Originating-Identity"
)

// Supported API versions: 2.MinMinor through 2.MaxMinor.
const (
	MinMinor = 13
	MaxMinor = 17
)

// Prefix is where Routes is mounted.
const Prefix = "/v2"

// maxPlans bounds the plans rendered per service.
const maxPlans = 1000

// Plans lists plans; the repository satisfies it.
type Plans interface {
	ListPlans(ctx context.Context, q mysqlrepo.PlanQuery) ([]plan.Plan, error)
}

// Credentials finds broker credentials; the repository satisfies it.
type Credentials interface {
	CredentialByUsername(ctx context.Context, username string) (brokercred.Credential, error)
}

// Engines tells which engine builds some host runs: the builds and true,
// or false when that is not known. *engineclient.Client implements it.
type Engines interface {
	Builds(ctx context.Context) ([]plan.Build, bool)
}

// Handler serves /v2.
type Handler struct {
	plans   Plans
	creds   Credentials
	logger  *slog.Logger
	forward http.Handler
	engines Engines
}

// WithEngines makes the catalog offer only the versions (and plans) some
// host runs, as e says; without it (or while e does not know) every active
// plan is offered with its versions as stored.
func (h *Handler) WithEngines(e Engines) { h.engines = e }

// ForwardInstances serves /v2/service_instances/* with f (provisioning).
func (h *Handler) ForwardInstances(f http.Handler) { h.forward = f }

// New returns the OSB handler.
func New(plans Plans, creds Credentials, logger *slog.Logger) (*Handler, error) {
	if plans == nil || creds == nil {
		return nil, errors.New("osb: nil plans or credentials")
	}
	if logger == nil {
		return nil, errors.New("osb: nil logger")
	}
	return &Handler{plans: plans, creds: creds, logger: logger}, nil
}

// Routes returns the routes below Prefix.
func (h *Handler) Routes() http.Handler {
	r := chi.NewRouter()
	r.Use(echoRequestIdentity, h.basicAuth, apiVersion)
	r.NotFound(func(w http.ResponseWriter, _ *http.Request) {
		writeError(w, http.StatusNotFound, "NotFound", "this broker does not serve this route (yet)")
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusMethodNotAllowed, "MethodNotAllowed", r.Method+" is not allowed here")
	})
	r.Get("/catalog", h.catalog)
	if h.forward != nil {
		r.Handle("/service_instances/*", h.forward)
	}
	return r
}

// errorJSON is the OSB error body.
type errorJSON struct {
	Error       string `json:"error,omitempty"`
	Description string `json:"description,omitempty"`
}

func writeError(w http.ResponseWriter, status int, code, description string) {
	writeJSON(w, status, errorJSON{Error: code, Description: description})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// echoRequestIdentity returns the platform's request identity, as OSB says
// a broker SHOULD.
func echoRequestIdentity(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if id := r.Header.Get(RequestIdentityHeader); id != "" && len(id) <= 256 {
			w.Header().Set(RequestIdentityHeader, id)
		}
		next.ServeHTTP(w, r)
	})
}

type credentialKey struct{}

// CredentialFrom returns the broker credential that authenticated the request.
func CredentialFrom(ctx context.Context) (brokercred.Credential, bool) {
	c, ok := ctx.Value(credentialKey{}).(brokercred.Credential)
	return c, ok
}

// basicAuth authenticates the platform with a broker credential; every
// failure is the same 401, with no hint which part was wrong. A credential
// bound to a tenant puts that tenant in the context.
func (h *Handler) basicAuth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, pass, ok := r.BasicAuth()
		var cred brokercred.Credential
		if ok && user != "" && len(user) <= 64 {
			c, err := h.creds.CredentialByUsername(r.Context(), user)
			switch {
			case err == nil:
				if c.Check(pass) == nil {
					cred = c
				}
			case errors.Is(err, mysqlrepo.ErrNotFound):
			default:
				h.logger.ErrorContext(r.Context(), "osb: look up broker credential", "err", err)
				writeError(w, http.StatusInternalServerError, "InternalError", "the broker could not check the credentials")
				return
			}
		}
		if cred.ID == "" {
			w.Header().Set("WWW-Authenticate", `Basic realm="canopy-osb", charset="UTF-8"`)
			writeError(w, http.StatusUnauthorized, "Unauthorized", "missing or invalid broker credentials")
			return
		}
		ctx := context.WithValue(r.Context(), credentialKey{}, cred)
		if cred.Tenant != "" {
			ctx = tenancy.WithTenant(ctx, cred.Tenant)
		}
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

var versionPattern = regexp.MustCompile(`^([0-9]{1,4})\.([0-9]{1,4})$`)

// ParseVersion checks an X-Broker-API-Version value: it reports whether it
// is present and well formed and, if so, whether it is supported.
func ParseVersion(v string) (wellFormed, supported bool) {
	m := versionPattern.FindStringSubmatch(v)
	if m == nil {
		return false, false
	}
	major, _ := strconv.Atoi(m[1])
	minor, _ := strconv.Atoi(m[2])
	return true, major == 2 && minor >= MinMinor && minor <= MaxMinor
}

// apiVersion rejects requests without X-Broker-API-Version (400, as OSB
// allows) and with a malformed or unsupported one (412).
func apiVersion(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v := r.Header.Get(VersionHeader)
		if v == "" {
			writeError(w, http.StatusBadRequest, "MissingBrokerAPIVersion",
				"the "+VersionHeader+" header is required; this broker supports 2."+strconv.Itoa(MinMinor)+" to 2."+strconv.Itoa(MaxMinor))
			return
		}
		if _, ok := ParseVersion(v); !ok {
			writeError(w, http.StatusPreconditionFailed, "UnsupportedBrokerAPIVersion",
				"broker API version "+strconv.Quote(v)+" is not supported; use 2."+strconv.Itoa(MinMinor)+" to 2."+strconv.Itoa(MaxMinor))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// catalog answers GET /v2/catalog with the orderable plans of every engine
// that some host runs a version of. It sets an ETag and answers 304 to a
// matching If-None-Match.
func (h *Handler) catalog(w http.ResponseWriter, r *http.Request) {
	var builds []plan.Build
	known := false
	if h.engines != nil {
		builds, known = h.engines.Builds(r.Context())
	}
	out := catalogJSON{Services: []serviceJSON{}}
	for _, svc := range plan.Services() {
		plans, err := h.plans.ListPlans(r.Context(), mysqlrepo.PlanQuery{Engine: svc.Engine, State: plan.Active, Limit: maxPlans})
		if err != nil {
			h.logger.ErrorContext(r.Context(), "osb: list plans", "err", err)
			writeError(w, http.StatusInternalServerError, "InternalError", "the broker could not read its catalog")
			return
		}
		// OSB requires a plan per service: an engine none of whose plans
		// can be ordered (no host runs their versions) is left out.
		if rendered := renderService(svc, plans, builds, known); len(rendered.Plans) > 0 {
			out.Services = append(out.Services, rendered)
		}
	}
	body, err := json.Marshal(out)
	if err != nil {
		h.logger.ErrorContext(r.Context(), "osb: encode catalog", "err", err)
		writeError(w, http.StatusInternalServerError, "InternalError", "the broker could not render its catalog")
		return
	}
	sum := sha256.Sum256(body)
	etag := `"` + hex.EncodeToString(sum[:16]) + `"`
	w.Header().Set("ETag", etag)
	w.Header().Set("Cache-Control", "no-cache")
	if inm := r.Header.Get("If-None-Match"); inm != "" && (inm == etag || inm == "*") {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}
