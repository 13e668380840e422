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
	"time"

	"github.com/canopy-platform/canopy/libs/tenancy"
)

// Forwarder hands OSB instance and binding calls to provisioning. The catalog
// stays the broker's one front door: it has already checked the broker
// credential and API version, and it turns a tenant-bound credential into a
// signed tenant identity, so provisioning sees an ordinary tenant request.
type Forwarder struct {
	proxy  *httputil.ReverseProxy
	signer *tenancy.Signer
	// resolve, when set, gives provisioning's base URL per request (see
	// ResolveBaseURL); base is then unused.
	resolve func() string
}

// ResolveBaseURL makes f read provisioning's base URL from resolve on every
// request instead of the base it was built with: the all-in-one binary starts
// provisioning after the catalog, on an address known only then. An empty or
// invalid answer is 503 (provisioning is not listening yet).
func (f *Forwarder) ResolveBaseURL(resolve func() string) { f.resolve = resolve }

// NewForwarder returns a forwarder to the provisioning service at base.
func NewForwarder(base string, secret []byte) (*Forwarder, error) {
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("osb: provisioning url %q must be an http(s) URL", base)
	}
	f := &Forwarder{signer: tenancy.NewSigner(secret)}
	f.proxy = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			target := u
			s, ok := pr.Out.Context().Value(signingKey{}).(signing)
			if ok && s.target != nil {
				target = s.target
			}
			pr.SetURL(target)
			pr.Out.Host = target.Host
			// Signed here, where the outbound path is final.
			if ok {
				f.signer.Sign(pr.Out.Header, pr.Out.Method, pr.Out.URL.RequestURI(), s.bodyHash, tenancy.AudienceProvisioning, s.p)
			}
		},
		Transport: &http.Transport{MaxIdleConnsPerHost: 16, IdleConnTimeout: 90 * time.Second, ResponseHeaderTimeout: 60 * time.Second},
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
	var target *url.URL
	if f.resolve != nil {
		t, err := url.Parse(f.resolve())
		if err != nil || (t.Scheme != "http" && t.Scheme != "https") || t.Host == "" {
			writeError(w, http.StatusServiceUnavailable, "ServiceUnavailable", "the provisioning service is not reachable yet; retry later")
			return
		}
		target = t
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
	out := r.Clone(context.WithValue(r.Context(), signingKey{}, signing{p: p, bodyHash: bh, target: target}))
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

// signing is what Rewrite signs the outbound request with.
type signing struct {
	p        tenancy.Principal
	bodyHash [sha256.Size]byte
	// target overrides the forwarder's base URL (ResolveBaseURL).
	target *url.URL
}

type signingKey struct{}
