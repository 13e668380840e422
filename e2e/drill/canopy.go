package drill

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"
)

// API calls Canopy's public gateway API with one API key, as a tenant's
// program does.
type API struct {
	Base, Key string
	HTTP      *http.Client
}

// APIError is an answer with an unexpected status.
type APIError struct {
	Method, Path string
	Status       int
	Body         string
}

func (e *APIError) Error() string {
	return fmt.Sprintf("%s %s: %d: %.400s", e.Method, e.Path, e.Status, e.Body)
}

// Do sends body (JSON, when not nil) and decodes a 2xx answer into out
// (when not nil); want, when not 0, is the only status accepted.
func (a *API) Do(ctx context.Context, method, path string, body, out any, want int) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.Base+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if a.Key != "" {
		req.Header.Set("Authorization", "Bearer "+a.Key)
	}
	hc := a.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("%s %s: read the answer: %w", method, path, err)
	}
	if (want != 0 && resp.StatusCode != want) || resp.StatusCode/100 != 2 {
		return &APIError{Method: method, Path: path, Status: resp.StatusCode, Body: string(b)}
	}
	if out != nil && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("%s %s: decode %.200s: %w", method, path, b, err)
		}
	}
	return nil
}

// Node is an instance's node as the API shows it.
type Node struct {
	ID      string `json:"id"`
	Name    string `json:"name"`
	Role    string `json:"role"`
	Address string `json:"address"`
	Port    int    `json:"port"`
	State   string `json:"state"`
}

// Instance is the part of GET /api/v1/instances/{id} the drills read.
type Instance struct {
	ID        string `json:"id"`
	Engine    string `json:"engine"`
	State     string `json:"state"`
	Nodes     []Node `json:"nodes"`
	Endpoints struct {
		Primary  string   `json:"primary"`
		Replicas []string `json:"replicas"`
	} `json:"endpoints"`
}

// Instance reads an instance.
func (a *API) Instance(ctx context.Context, id string) (Instance, error) {
	var inst Instance
	err := a.Do(ctx, http.MethodGet, "/api/v1/instances/"+url.PathEscape(id), nil, &inst, http.StatusOK)
	return inst, err
}

// Failover is one item of GET /api/v1/instances/{id}/failovers.
type Failover struct {
	ID               string          `json:"id"`
	Kind             string          `json:"kind"`
	Problem          string          `json:"problem"`
	OldPrimary       json.RawMessage `json:"old_primary"`
	NewPrimary       json.RawMessage `json:"new_primary"`
	State            string          `json:"state"`
	DetectedAt       string          `json:"detected_at"`
	CompletedAt      string          `json:"completed_at"`
	RTOMS            int64           `json:"rto_ms"`
	DetectionMS      int64           `json:"detection_ms"`
	PromotionMS      int64           `json:"promotion_ms"`
	LostTransactions json.RawMessage `json:"lost_transactions"`
}

// Failovers lists an instance's failover history.
func (a *API) Failovers(ctx context.Context, id string) ([]Failover, error) {
	var page struct {
		Items []Failover `json:"items"`
	}
	err := a.Do(ctx, http.MethodGet, "/api/v1/instances/"+url.PathEscape(id)+"/failovers", nil, &page, http.StatusOK)
	return page.Items, err
}

// CanopyLocator finds the primary as a Canopy user's program does: the
// instance's endpoints.primary.
type CanopyLocator struct {
	API        *API
	InstanceID string
	// Timeout bounds one look-up.
	Timeout time.Duration
}

var _ Locator = (*CanopyLocator)(nil)

// Primary reads endpoints.primary.
func (l *CanopyLocator) Primary(ctx context.Context) (string, error) {
	if l.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, l.Timeout)
		defer cancel()
	}
	inst, err := l.API.Instance(ctx, l.InstanceID)
	if err != nil {
		return "", err
	}
	if inst.Endpoints.Primary == "" {
		return "", fmt.Errorf("instance %s has no primary endpoint (state %s)", l.InstanceID, inst.State)
	}
	return inst.Endpoints.Primary, nil
}
