package mysqlrepo

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/canopy-platform/canopy/services/catalog/internal/plan"
)

// TestPlanEventBytesUnchanged pins the wire format: the contract's plan
// marshals to the same bytes as the plan the catalog published before the
// contract package existed (the domain plan plus service_id and size).
func TestPlanEventBytesUnchanged(t *testing.T) {
	type legacyPlan struct {
		plan.Plan
		ServiceID string `json:"service_id"`
		Size      string `json:"size"`
	}
	type legacyEvent struct {
		Plan          legacyPlan `json:"plan"`
		ChangedFields []string   `json:"changed_fields,omitempty"`
	}
	seed, err := plan.Seed(time.Date(2026, 12, 2, 14, 0, 0, 123456789, time.UTC))
	require.NoError(t, err)
	deprecated := seed[0]
	deprecated.Deprecate(time.Date(2026, 12, 3, 0, 0, 0, 0, time.UTC))
	cases := map[string]struct {
		p       plan.Plan
		changed []string
	}{
		"seeded":     {seed[0], nil},
		"updated":    {seed[len(seed)-1], []string{"description", "prices"}},
		"deprecated": {deprecated, []string{"state"}},
		"empty":      {plan.Plan{}, nil},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			svc, _ := plan.LookupService(tc.p.Engine)
			want, err := json.Marshal(legacyEvent{Plan: legacyPlan{Plan: tc.p, ServiceID: svc.ID, Size: tc.p.Size()}, ChangedFields: tc.changed})
			require.NoError(t, err)
			e, err := planEvent("catalog.plan.updated", tc.p, tc.changed)
			require.NoError(t, err)
			require.Equal(t, string(want), string(e.Data))
		})
	}
}
