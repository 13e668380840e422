// Package provview reads provisioning's internal CDC view (temporary
// stand-in on this branch, with the pipeline helper's API).
//
// Temporary: replaced at merge.
package provview

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// ErrNotFound is returned for an unknown instance, or another tenant's.
var ErrNotFound = errors.New("instance not found")

// Info is what the stream API needs to know of an instance.
type Info struct {
	ID     string
	Tenant string
	Engine string
	State  string
}

// Client reads provisioning's internal CDC view.
type Client struct{ baseURL string }

// New returns a client of provisioning at baseURL.
func New(baseURL string, secret []byte, timeout time.Duration) (*Client, error) {
	if baseURL == "" || len(secret) == 0 || timeout <= 0 {
		return nil, errors.New("provview: base URL, secret and timeout are required")
	}
	return &Client{baseURL: baseURL}, nil
}

// Get returns tenant's instance ("" for any tenant's).
func (c *Client) Get(_ context.Context, _, id string) (Info, error) {
	return Info{}, fmt.Errorf("provview stand-in: instance %s cannot be read from %s", id, c.baseURL)
}
