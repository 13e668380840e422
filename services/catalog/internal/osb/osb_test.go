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
	ha := renderPlan(plans[1], plans[1].Offer(nil, false))
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
	require.True(t, renderPlan(free, free.Offer(nil, false)).Free)
}

// TestRenderOnlyRunnableVersions: with the builds known, a plan lists the
// versions some host runs with their builds' labels, and a plan of which
// no host runs any version is not offered.
func TestRenderOnlyRunnableVersions(t *testing.T) {
	plans, err := plan.Seed(time.Now())
	require.NoError(t, err)
	ha := plans[1]
	ha.Versions = []string{"8.0", "10.11"}
	ha.DefaultVersion = "8.0"
	builds := []plan.Build{{Engine: plan.MySQL, Series: "10.11", Label: "mariadb-10.11.19"}}
	r := renderPlan(ha, ha.Offer(builds, true))
	require.Equal(t, []string{"10.11"}, r.Metadata.Canopy.Versions)
	require.Equal(t, "10.11", r.Metadata.Canopy.DefaultVersion)
	require.Equal(t, map[string]string{"10.11": "mariadb-10.11.19"}, r.Metadata.Canopy.VersionLabels)

	eight := plans[0]
	eight.Versions, eight.DefaultVersion = []string{"8.4"}, "8.4"
	svc := renderService(plan.Service{Engine: plan.MySQL, ID: "a2dc262d-040c-459d-9e7c-53776f4dcf5b"}, []plan.Plan{ha, eight}, builds, true)
	require.Len(t, svc.Plans, 1)
	require.Equal(t, ha.ID, svc.Plans[0].ID)
	svc = renderService(plan.Service{Engine: plan.MySQL, ID: "a2dc262d-040c-459d-9e7c-53776f4dcf5b"}, []plan.Plan{ha, eight}, nil, false)
	require.Len(t, svc.Plans, 2, "unknown builds: every plan, as stored")
}

// TestRenderService: the routes provisioning serves are advertised (GET of
// instances and bindings), those it does not are not.
func TestRenderService(t *testing.T) {
	plans, err := plan.Seed(time.Now())
	require.NoError(t, err)
	svc := renderService(plan.Service{Engine: plans[0].Engine, ID: "a2dc262d-040c-459d-9e7c-53776f4dcf5b"}, plans[:1], nil, false)
	require.True(t, svc.Bindable)
	require.True(t, svc.InstancesRetrievable, "GET /v2/service_instances/:id is served")
	require.True(t, svc.BindingsRetrievable, "GET …/service_bindings/:id is served")
	require.False(t, svc.AllowContextUpdates)
	require.False(t, svc.PlanUpdateable)
}
