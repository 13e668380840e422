package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/canopy-platform/canopy/libs/openapitest"
)

// client calls the public gateway API with one API key, the way a tenant's
// program (or README's curl quick start) does.
type client struct {
	t    *testing.T
	base string
	key  string
	http *http.Client
	// header is sent with every request (see with).
	header http.Header
	// contract checks every /api/v1 answer (contract_test.go).
	contract *openapitest.Spec
}

// with returns a copy of c that also sends the header name: value (a
// Content-Type given so replaces application/json).
func (c *client) with(name, value string) *client {
	cp := *c
	cp.header = c.header.Clone()
	if cp.header == nil {
		cp.header = http.Header{}
	}
	cp.header.Set(name, value)
	return &cp
}

// problem is an RFC 9457 problem+json body.
type problem struct {
	Type      string `json:"type"`
	Title     string `json:"title"`
	Status    int    `json:"status"`
	Detail    string `json:"detail"`
	RequestID string `json:"request_id"`
	Errors    []struct {
		Field  string `json:"field"`
		Reason string `json:"reason"`
	} `json:"errors"`
}

// apiError is an answer with an unexpected status.
type apiError struct {
	Method, Path string
	Status       int
	Problem      *problem
	Body         string
}

func (e *apiError) Error() string {
	if p := e.Problem; p != nil {
		var fields []string
		for _, f := range p.Errors {
			fields = append(fields, f.Field+": "+f.Reason)
		}
		return fmt.Sprintf("%s %s: %d %s: %s %v (type %s, request_id %s)",
			e.Method, e.Path, e.Status, p.Title, p.Detail, fields, p.Type, p.RequestID)
	}
	return fmt.Sprintf("%s %s: %d: %.500s", e.Method, e.Path, e.Status, e.Body)
}

// as returns a client of the same platform with another key.
func (p *platform) client(t *testing.T, key string) *client {
	t.Helper()
	spec, err := openapitest.Load()
	if err != nil {
		t.Fatalf("OpenAPI document: %v", err)
	}
	return &client{t: t, base: p.URL, key: key, http: &http.Client{Timeout: 15 * time.Second}, contract: spec}
}

// admin is the platform-admin client.
func (p *platform) admin(t *testing.T) *client { return p.client(t, p.AdminKey) }

// do sends a request and returns the status and body; a transport error is
// returned as such.
func (c *client) do(method, path string, body any) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, nil, err
		}
		rd = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return 0, nil, err
	}
	for name, v := range c.header {
		req.Header[name] = v
	}
	if c.key != "" {
		req.Header.Set("Authorization", "Bearer "+c.key)
	}
	req.Header.Set("X-Request-Id", "e2e-"+randHex(8))
	if body != nil && req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, nil, fmt.Errorf("%s %s: read body: %w", method, path, err)
	}
	if c.contract != nil && strings.HasPrefix(path, "/api/v1/") && path != "/api/v1/openapi.yaml" {
		if err := c.contract.Check(req, resp.StatusCode, resp.Header, b); err != nil {
			c.t.Errorf("contract: %v", err)
		}
	}
	return resp.StatusCode, b, nil
}

// call sends a request and decodes a want-status answer into out (when not
// nil); any other status is an *apiError carrying the problem.
func (c *client) call(method, path string, body any, want int, out any) error {
	status, b, err := c.do(method, path, body)
	if err != nil {
		return err
	}
	if status != want {
		e := &apiError{Method: method, Path: path, Status: status, Body: string(b)}
		var p problem
		if json.Unmarshal(b, &p) == nil && p.Status != 0 {
			e.Problem = &p
		}
		return e
	}
	if out != nil && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("%s %s: decode %T: %w (body %.300s)", method, path, out, err, b)
		}
	}
	return nil
}

// must is call that fails the test on any error.
func (c *client) must(method, path string, body any, want int, out any) {
	c.t.Helper()
	if err := c.call(method, path, body, want, out); err != nil {
		c.t.Fatal(err)
	}
}

// mustProblem asserts that the request is refused with status and a
// problem+json body.
func (c *client) mustProblem(method, path string, body any, status int) problem {
	c.t.Helper()
	got, b, err := c.do(method, path, body)
	if err != nil {
		c.t.Fatal(err)
	}
	var p problem
	if got != status || json.Unmarshal(b, &p) != nil || p.Status != status {
		c.t.Fatalf("%s %s: want a %d problem+json, got %d: %.500s", method, path, status, got, b)
	}
	return p
}

// --- the API's resources, as far as the scenarios read them ---

type tenantKey struct {
	ID  string `json:"id"`
	Key string `json:"key"`
}

type catalogServices struct {
	Items []struct {
		Name  string `json:"name"`
		Plans []struct {
			ID   string `json:"id"`
			Name string `json:"name"`
		} `json:"plans"`
	} `json:"items"`
}

type instance struct {
	ID     string `json:"id"`
	Name   string `json:"name"`
	Engine string `json:"engine"`
	State  string `json:"state"`
	Step   string `json:"step"`
	Reason string `json:"reason"`
	Nodes  []struct {
		ID      string `json:"id"`
		Name    string `json:"name"`
		Role    string `json:"role"`
		AZ      string `json:"az"`
		Host    string `json:"host"`
		Address string `json:"address"`
		Port    int    `json:"port"`
		State   string `json:"state"`
	} `json:"nodes"`
	Endpoints struct {
		Primary  string   `json:"primary"`
		Replicas []string `json:"replicas"`
		routerEndpoints
	} `json:"endpoints"`
}

type instanceAccepted struct {
	Instance    instance `json:"instance"`
	OperationID string   `json:"operation_id"`
}

type operation struct {
	ID    string `json:"id"`
	Type  string `json:"type"`
	State string `json:"state"`
	Step  string `json:"step"`
	Error string `json:"error"`
}

type binding struct {
	ID          string `json:"id"`
	Username    string `json:"username"`
	Credentials struct {
		Host     string `json:"host"`
		Port     int    `json:"port"`
		Username string `json:"username"`
		Password string `json:"password"`
		Database string `json:"database"`
		URI      string `json:"uri"`
		// Endpoints are the router's stable endpoints.
		Endpoints routerEndpoints `json:"endpoints"`
	} `json:"credentials"`
}

type instanceHealth struct {
	Nodes []struct {
		ID      string `json:"id"`
		Address string `json:"address"`
		Role    string `json:"role"`
		Status  string `json:"status"`
		Reason  string `json:"reason"`
	} `json:"nodes"`
}

type resources struct {
	VCPU      float64 `json:"vcpu"`
	MemoryMB  int64   `json:"memory_mb"`
	StorageGB int64   `json:"storage_gb"`
}

type placement struct {
	Status string `json:"status"`
	Nodes  []struct {
		Host string `json:"host"`
		Port int    `json:"port"`
	} `json:"nodes"`
}

type healthTargets struct {
	Targets []struct {
		ID         string `json:"id"`
		InstanceID string `json:"instance_id"`
		Address    string `json:"address"`
	} `json:"targets"`
}

type host struct {
	ID        string    `json:"id"`
	Allocated resources `json:"allocated"`
}

// --- helpers over them ---

// newTenant creates a tenant and returns a client with a new key of role for it.
func (p *platform) newTenant(t *testing.T, id, role string) *client {
	t.Helper()
	p.admin(t).must("POST", "/api/v1/tenants", map[string]any{"id": id, "name": "E2E " + id}, http.StatusCreated, nil)
	return p.newKey(t, id, role)
}

// newKey issues a key of role for tenant (as platform-admin) and returns a client with it.
func (p *platform) newKey(t *testing.T, tenant, role string) *client {
	t.Helper()
	var k tenantKey
	p.admin(t).must("POST", "/api/v1/tenants/"+tenant+"/api-keys", map[string]any{"name": "e2e-" + role, "role": role}, http.StatusCreated, &k)
	if !strings.HasPrefix(k.Key, "cnp_") {
		t.Fatalf("the new API key of %s is not a cnp_ key: %q", tenant, k.Key)
	}
	return p.client(t, k.Key)
}

// planID finds a plan by name in the catalog as c sees it.
func (c *client) planID(name string) string {
	c.t.Helper()
	var cat catalogServices
	c.must("GET", "/api/v1/catalog/services", nil, http.StatusOK, &cat)
	var names []string
	for _, s := range cat.Items {
		for _, p := range s.Plans {
			if p.Name == name {
				return p.ID
			}
			names = append(names, p.Name)
		}
	}
	c.t.Fatalf("no plan %q in the catalog (plans: %v)", name, names)
	return ""
}

// hosts lists every inventory host (platform-admin).
func (c *client) hosts() []host {
	c.t.Helper()
	var all []host
	cursor := ""
	for {
		var page struct {
			Items      []host `json:"items"`
			NextCursor string `json:"next_cursor"`
		}
		path := "/api/v1/inventory/hosts?limit=500"
		if cursor != "" {
			path += "&cursor=" + cursor
		}
		c.must("GET", path, nil, http.StatusOK, &page)
		all = append(all, page.Items...)
		if page.NextCursor == "" {
			return all
		}
		cursor = page.NextCursor
	}
}

// allocation is every host's allocated resources, by host id.
func (c *client) allocation() map[string]resources {
	c.t.Helper()
	out := map[string]resources{}
	for _, h := range c.hosts() {
		out[h.ID] = h.Allocated
	}
	return out
}
