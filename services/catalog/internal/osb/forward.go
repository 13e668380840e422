package osb

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"time"

	"github.com/canopy-platform/canopy/libs/replicas"
	"github.com/canopy-platform/canopy/libs/tenancy"
)

// Forwarder hands OSB instance and binding calls to provisioning. The catalog
// stays the broker's one front door: it has already checked the broker
// credential and API version, and it turns a tenant-bound credential into a
// signed tenant identity, so provisioning sees an ordinary tenant request.
// Provisioning's base URL may list its replicas (comma-separated): calls
// spread over them with libs/svcclient's rules (libs/replicas) — a call
// goes to another replica after a refused connect, a GET also after any
// transport failure or a 502/503, a PUT, PATCH or DELETE a replica may
// have read never (OSB calls carry no Idempotency-Key).
type Forwarder struct {
	proxy    *httputil.ReverseProxy
	signer   *tenancy.Signer
	rotation *replicas.Rotation
	next     http.RoundTripper
	base     []string
	// resolve, when set, gives provisioning's base URL(s) per request (see
	// ResolveBaseURL); base is then unused.
	resolve func() string
}

// ResolveBaseURL makes f read provisioning's base URL from resolve on every
// request instead of the base it was built with: the all-in-one binary starts
// provisioning after the catalog, on an address known only then. An empty or
// invalid answer is 503 (provisioning is not listening yet).
func (f *Forwarder) ResolveBaseURL(resolve func() string) { f.resolve = resolve }

// NewForwarder returns a forwarder to the provisioning service at base (one
// URL or the comma-separated URLs of its replicas).
func NewForwarder(base string, secret []byte) (*Forwarder, error) {
	bases, err := replicas.Parse(base)
	if err != nil {
		return nil, fmt.Errorf("osb: provisioning url: %w", err)
	}
	f := &Forwarder{signer: tenancy.NewSigner(secret), rotation: replicas.NewRotation(0), base: bases,
		next: &http.Transport{MaxIdleConnsPerHost: 16, IdleConnTimeout: 90 * time.Second, ResponseHeaderTimeout: 60 * time.Second}}
	f.proxy = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			// Aimed at the first replica of the call's order; balancer
			// aims each further attempt and signs every one.
			s := pr.Out.Context().Value(signingKey{}).(signing)
			pr.SetURL(s.order[0])
			pr.Out.Host = s.order[0].Host
		},
		Transport: balancer{f},
		ErrorHandler: func(w http.ResponseWriter, _ *http.Request, _ error) {
			writeError(w, http.StatusBadGateway, "ServiceUnavailable", "the provisioning service is not reachable; retry later")
		},
	}
	return f, nil
}

// ServeHTTP forwards r, which basicAuth has authenticated, with the
// credential's tenant signed in. A platform-wide credential cannot provision
// until context mappings exist: it would not know whose instance to create.
func (f *Forwarder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	cred, ok := CredentialFrom(r.Context())
	if !ok {
		writeError(w, http.StatusUnauthorized, "Unauthorized", "missing or invalid broker credentials")
		return
	}
	if cred.Tenant == "" {
		writeError(w, http.StatusUnprocessableEntity, "TenantRequired",
			"this broker credential is not bound to a tenant; provisioning needs a tenant-bound credential (see docs/osb.md)")
		return
	}
	bases := f.base
	if f.resolve != nil {
		var err error
		if bases, err = replicas.Parse(f.resolve()); err != nil {
			writeError(w, http.StatusServiceUnavailable, "ServiceUnavailable", "the provisioning service is not reachable yet; retry later")
			return
		}
	}
	names := f.rotation.Order(bases)
	order := make([]*url.URL, len(names))
	for i, b := range names {
		order[i], _ = url.Parse(b) // checked by replicas.Parse
	}
	// The signature covers the body: buffer it (the router bounds its size).
	bh := tenancy.EmptyBodyHash
	var body []byte
	if r.Body != nil && r.Body != http.NoBody {
		var err error
		if body, err = io.ReadAll(r.Body); err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				writeError(w, http.StatusRequestEntityTooLarge, "BadRequest", "request body too large")
				return
			}
			writeError(w, http.StatusBadRequest, "BadRequest", "could not read the request body")
			return
		}
		bh = sha256.Sum256(body)
	}
	p := tenancy.Principal{Tenant: cred.Tenant, Role: tenancy.RoleTenantMember, Subject: "osb:" + cred.ID}
	out := r.Clone(context.WithValue(r.Context(), signingKey{}, signing{p: p, body: body, bodyHash: bh, order: order, names: names}))
	for k := range out.Header {
		if len(k) > 9 && http.CanonicalHeaderKey(k[:9]) == "X-Canopy-" {
			out.Header.Del(k)
		}
	}
	out.Header.Del("Authorization")
	out.Body, out.ContentLength = http.NoBody, 0
	if len(body) > 0 {
		out.Body, out.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
	}
	f.proxy.ServeHTTP(w, out)
}

// signing is what balancer signs the outbound request with.
type signing struct {
	p        tenancy.Principal
	body     []byte
	bodyHash [sha256.Size]byte
	// order is the replicas to try, in order (at least one), and names
	// their base URLs as configured (the rotation's keys).
	order []*url.URL
	names []string
}

type signingKey struct{}

// balancer sends a forwarded call to provisioning's replicas in the call's
// order, signing each attempt (its own nonce, its replica's path), and goes
// on to the next only when that cannot make provisioning act twice.
type balancer struct{ f *Forwarder }

func (b balancer) RoundTrip(out *http.Request) (*http.Response, error) {
	f := b.f
	s := out.Context().Value(signingKey{}).(signing)
	repeatable := replicas.Repeatable(out.Method, out.Header)
	for i, target := range s.order {
		last := i == len(s.order)-1
		req := out
		if i > 0 {
			req = out.Clone(out.Context())
			u := *out.URL
			u.Scheme, u.Host = target.Scheme, target.Host
			u.Path, u.RawPath = target.Path+strings.TrimPrefix(out.URL.Path, s.order[0].Path), ""
			req.URL, req.Host = &u, target.Host
			req.Body, req.ContentLength = http.NoBody, 0
			if len(s.body) > 0 {
				req.Body, req.ContentLength = io.NopCloser(bytes.NewReader(s.body)), int64(len(s.body))
			}
		}
		f.signer.Sign(req.Header, req.Method, req.URL.RequestURI(), s.bodyHash, tenancy.AudienceProvisioning, s.p)
		resp, err := f.next.RoundTrip(req)
		if err != nil {
			if out.Context().Err() != nil {
				return nil, err
			}
			f.rotation.SetAside(s.names[i])
			if (replicas.Refused(err) || repeatable) && !last {
				continue
			}
			return nil, err
		}
		if replicas.ShuttingDown(resp.StatusCode) && repeatable && !last {
			_ = resp.Body.Close()
			f.rotation.SetAside(s.names[i])
			continue
		}
		f.rotation.Restore(s.names[i])
		return resp, nil
	}
	panic("unreachable: the order is never empty")
}
