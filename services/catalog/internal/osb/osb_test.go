package osb

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/canopy-platform/canopy/services/catalog/internal/plan"
)

func TestParseVersion(t *testing.T) {
	tests := []struct {
		in                    string
		wellFormed, supported bool
	}{
		{"2.17", true, true},
		{"2.13", true, true},
		{"2.12", true, false},
		{"2.18", true, false},
		{"1.17", true, false},
		{"3.0", true, false},
		{"2", false, false},
		{"2.17.1", false, false},
		{"v2.17", false, false},
		{"", false, false},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			wf, sup := ParseVersion(tc.in)
			require.Equal(t, tc.wellFormed, wf)
			require.Equal(t, tc.supported, sup)
		})
	}
}

func TestRenderPlan(t *testing.T) {
	plans, err := plan.Seed(time.Now())
	require.NoError(t, err)
	ha := renderPlan(plans[1])
	require.Equal(t, plan.MySQLHAID, ha.ID)
	require.False(t, ha.Free)
	require.False(t, ha.PlanUpdateable)
	require.Equal(t, 3600, ha.MaximumPollingDuration)
	require.Equal(t, []costJSON{
		{Amount: map[string]float64{"usd": 0.16}, Unit: "NODE-HOUR"},
		{Amount: map[string]float64{"usd": 0.00014}, Unit: "GB-HOUR"},
	}, ha.Metadata.Costs)
	require.Contains(t, ha.Metadata.Bullets[0], "2 replica(s), semi-sync replication")
	require.Contains(t, string(ha.Schemas.ServiceInstance.Create.Parameters), `"$schema"`)

	free := plans[0]
	free.Prices.NodeHour, free.Prices.StorageGBHour = "0", "0.000"
	require.True(t, renderPlan(free).Free)
}

// TestRenderService: the routes provisioning serves are advertised (GET of
// instances and bindings), those it does not are not.
func TestRenderService(t *testing.T) {
	plans, err := plan.Seed(time.Now())
	require.NoError(t, err)
	svc := renderService(plan.Service{Engine: plans[0].Engine, ID: "a2dc262d-040c-459d-9e7c-53776f4dcf5b"}, plans[:1])
	require.True(t, svc.Bindable)
	require.True(t, svc.InstancesRetrievable, "GET /v2/service_instances/:id is served")
	require.True(t, svc.BindingsRetrievable, "GET …/service_bindings/:id is served")
	require.False(t, svc.AllowContextUpdates)
	require.False(t, svc.PlanUpdateable)
}
