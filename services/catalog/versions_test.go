package catalog_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/canopy-platform/canopy/libs/eventbus"
	"github.com/canopy-platform/canopy/libs/store"
	"github.com/canopy-platform/canopy/libs/store/storetest"
	"github.com/canopy-platform/canopy/libs/tenancy"
	"github.com/canopy-platform/canopy/services/catalog"
)

// Engines views as provisioning answers GET /internal/v1/engines.
const (
	unreported  = `{"reported":false,"items":[]}`
	mariadbOnly = `{"reported":true,"items":[{"engine":"mysql","flavor":"mariadb","version":"10.11.19","series":"10.11","label":"mariadb-10.11.19"}]}`
)

// provisioningStandIn serves provisioning's engines view (services never
// import each other): signed requests for provisioning's audience only.
type provisioningStandIn struct{ srv *httptest.Server }

func newProvisioningStandIn(t *testing.T, body string) *provisioningStandIn {
	h := tenancy.Middleware(tenancy.AudienceProvisioning, []byte(secret))(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := tenancy.PrincipalFrom(r.Context()); !ok || r.URL.Path != "/internal/v1/engines" {
			http.Error(w, "not here", http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, body)
	}))
	p := &provisioningStandIn{srv: httptest.NewServer(h)}
	t.Cleanup(p.srv.Close)
	return p
}

// TestListsOnlyRunnableVersions: with provisioning reporting MariaDB
// 10.11.19 and no Redis, the services listing, the plans and the OSB
// catalog offer 10.11 labelled mariadb-10.11.19, no Redis plan is offered,
// and a plan's versions no host runs show as unavailable.
func TestListsOnlyRunnableVersions(t *testing.T) {
	prov := newProvisioningStandIn(t, mariadbOnly)
	e := startWith(t, storetest.NewConfig(t, "catalog_versions"), func(c *catalog.Config) { c.ProvisioningURL = prov.srv.URL })
	admin := tenancy.RolePlatformAdmin

	var services struct {
		Items []struct {
			Name          string            `json:"name"`
			Versions      []string          `json:"versions"`
			VersionLabels map[string]string `json:"version_labels"`
			Plans         []planView        `json:"plans"`
		} `json:"items"`
	}
	r := e.do(tenancy.RoleTenantViewer, "GET", "/api/v1/catalog/services", nil, nil)
	require.Equal(t, 200, r.Status, string(r.Body))
	require.NoError(t, json.Unmarshal(r.Body, &services))
	require.Len(t, services.Items, 2)
	mysql, redis := services.Items[0], services.Items[1]
	require.Equal(t, []string{"10.11"}, mysql.Versions)
	require.Equal(t, map[string]string{"10.11": "mariadb-10.11.19"}, mysql.VersionLabels)
	require.Len(t, mysql.Plans, 3)
	for _, p := range mysql.Plans {
		require.Equal(t, []string{"10.11"}, p.Versions, p.Name)
		require.Equal(t, "10.11", p.DefaultVersion, p.Name)
		require.Equal(t, map[string]string{"10.11": "mariadb-10.11.19"}, p.VersionLabels, p.Name)
		require.Empty(t, p.Unavailable, p.Name)
	}
	require.Empty(t, redis.Versions, "no host runs Redis")
	require.Empty(t, redis.Plans, "a plan no host runs a version of is not offered")

	// A plan holding a version no host runs: created, but only 10.11 is offered.
	r = e.do(admin, "POST", "/api/v1/catalog/plans", with(with(newPlanBody("mysql-mixed"), "versions", []string{"8.0", "10.11"}), "default_version", "8.0"), nil)
	require.Equal(t, 201, r.Status, string(r.Body))
	var mixed planView
	require.NoError(t, json.Unmarshal(r.Body, &mixed))
	require.Equal(t, []string{"10.11"}, mixed.Versions)
	require.Equal(t, "10.11", mixed.DefaultVersion)
	require.Equal(t, []string{"8.0"}, mixed.Unavailable)

	// A Redis plan is readable, with nothing to order.
	r = e.do(tenancy.RoleTenantViewer, "GET", "/api/v1/catalog/plans/22ffda50-b33a-4466-8afc-15ba8e0e6465", nil, nil)
	require.Equal(t, 200, r.Status, string(r.Body))
	var redisDev planView
	require.NoError(t, json.Unmarshal(r.Body, &redisDev))
	require.Empty(t, redisDev.Versions)
	require.Empty(t, redisDev.DefaultVersion)
	require.Equal(t, []string{"7.0"}, redisDev.Unavailable)

	// The OSB catalog: the same, and still valid OSB.
	cred := e.do(admin, "POST", "/api/v1/catalog/broker-credentials", map[string]any{"name": "cf-versions"}, nil).json(t)
	req, err := http.NewRequest("GET", e.base+"/v2/catalog", nil)
	require.NoError(t, err)
	req.SetBasicAuth(cred["username"].(string), cred["password"].(string))
	req.Header.Set("X-Broker-API-Version", "2.17")
	res, err := e.client.Do(req)
	require.NoError(t, err)
	body, err := io.ReadAll(res.Body)
	res.Body.Close()
	require.NoError(t, err)
	require.Equal(t, 200, res.StatusCode, string(body))
	var doc any
	require.NoError(t, json.Unmarshal(body, &doc))
	require.NoError(t, compileOSBSchema(t).Validate(doc))
	var osb struct {
		Services []struct {
			Name  string `json:"name"`
			Plans []struct {
				Name     string `json:"name"`
				Metadata struct {
					Canopy struct {
						Versions       []string          `json:"versions"`
						DefaultVersion string            `json:"default_version"`
						VersionLabels  map[string]string `json:"version_labels"`
					} `json:"canopy"`
				} `json:"metadata"`
			} `json:"plans"`
		} `json:"services"`
	}
	require.NoError(t, json.Unmarshal(body, &osb))
	require.Len(t, osb.Services, 1, "no Redis plan is offered, so no Redis service (OSB wants a plan per service)")
	require.Len(t, osb.Services[0].Plans, 4, "three default MySQL plans and mysql-mixed")
	for _, p := range osb.Services[0].Plans {
		require.Equal(t, []string{"10.11"}, p.Metadata.Canopy.Versions, p.Name)
		require.Equal(t, "10.11", p.Metadata.Canopy.DefaultVersion, p.Name)
		require.Equal(t, "mariadb-10.11.19", p.Metadata.Canopy.VersionLabels["10.11"], p.Name)
	}
}

// TestUnreportedListsAsStored: a provisioning whose driver does not report
// its builds, or none reachable, leaves versions as stored, without labels.
func TestUnreportedListsAsStored(t *testing.T) {
	for name, url := range map[string]string{"unreported": "", "unreachable": "http://127.0.0.1:1"} {
		t.Run(name, func(t *testing.T) {
			e := startWith(t, storetest.NewConfig(t, "catalog_unreported"), func(c *catalog.Config) {
				if url != "" {
					c.ProvisioningURL = url
				}
			})
			r := e.do(tenancy.RoleTenantViewer, "GET", "/api/v1/catalog/plans/22ffda50-b33a-4466-8afc-15ba8e0e6465", nil, nil)
			require.Equal(t, 200, r.Status, string(r.Body))
			var p planView
			require.NoError(t, json.Unmarshal(r.Body, &p))
			require.Equal(t, []string{"7.0"}, p.Versions)
			require.Nil(t, p.VersionLabels)
			require.Nil(t, p.Unavailable)
		})
	}
}

type planView struct {
	ID             string            `json:"id"`
	Name           string            `json:"name"`
	Versions       []string          `json:"versions"`
	DefaultVersion string            `json:"default_version"`
	VersionLabels  map[string]string `json:"version_labels"`
	Unavailable    []string          `json:"unavailable_versions"`
}

// TestSeedUpgradesEarlierDefaultPlans: a catalog database seeded by an
// earlier release (MySQL mariadb-10.11/8.0/8.4, Redis 7.2/7.4) has its
// default plans moved to this release's versions at start, with a
// catalog.plan.updated event each; a default plan whose versions an admin
// changed and a plan an admin created keep theirs.
func TestSeedUpgradesEarlierDefaultPlans(t *testing.T) {
	cfg := storetest.NewConfig(t, "catalog_seedupgrade")
	first := start(t, cfg)
	admin := tenancy.RolePlatformAdmin
	custom := with(with(with(newPlanBody("redis-custom"), "engine", "redis"), "replication_mode", "async"), "versions", []string{"7.2", "7.4"})
	custom["parameters_schema"] = map[string]any{"type": "object"}
	custom["slo"] = map[string]any{"availability": 99.9, "rto_seconds": 60, "rpo_seconds": 1}
	r := first.do(admin, "POST", "/api/v1/catalog/plans", custom, nil)
	require.Equal(t, 201, r.Status, string(r.Body))
	customID := r.json(t)["id"].(string)

	// Rewind the stored default plans to what the earlier seed wrote.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db, err := store.Open(ctx, cfg, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	defer db.Close()
	rewind := func(versions string, ids ...string) {
		for _, id := range ids {
			_, err := db.SQL().ExecContext(ctx, "UPDATE plans SET doc = JSON_SET(doc, '$.versions', JSON_EXTRACT(?, '$'), '$.default_version', JSON_VALUE(?, '$[0]')) WHERE id = ?", versions, versions, id)
			require.NoError(t, err)
		}
	}
	const (
		mysqlDev, mysqlHA, mysqlDR = "6814408d-3c80-49ac-ba04-aaed9eddf844", "1f60f3c5-2563-40f2-ab4b-9024647756ec", "955f03e0-ba27-48cf-acde-d2b92f385034"
		redisDev, redisHA, redisDR = "22ffda50-b33a-4466-8afc-15ba8e0e6465", "013af63c-64eb-488d-b30b-08559e96807b", "cdd65d3b-a348-40f3-88d8-44f65663e37c"
	)
	rewind(`["mariadb-10.11","8.0","8.4"]`, mysqlDev, mysqlHA, mysqlDR)
	rewind(`["7.2","7.4"]`, redisDev, redisDR)
	rewind(`["7.4"]`, redisHA) // an admin's choice since
	get := func(e *env, id string) planView {
		r := e.do(admin, "GET", "/api/v1/catalog/plans/"+id, nil, nil)
		require.Equal(t, 200, r.Status, string(r.Body))
		var p planView
		require.NoError(t, json.Unmarshal(r.Body, &p))
		return p
	}
	require.Equal(t, []string{"7.2", "7.4"}, get(first, redisDev).Versions, "the rewind took")

	second := start(t, cfg)
	for id, want := range map[string][]string{mysqlDev: {"10.11"}, mysqlHA: {"10.11"}, mysqlDR: {"10.11"}, redisDev: {"7.0"}, redisDR: {"7.0"}, redisHA: {"7.4"}, customID: {"7.2", "7.4"}} {
		p := get(second, id)
		require.Equal(t, want, p.Versions, p.Name)
		require.Equal(t, want[0], p.DefaultVersion, p.Name)
	}

	// One catalog.plan.updated per upgraded plan, from whichever relay sent it.
	upgraded := []string{mysqlDev, mysqlHA, mysqlDR, redisDev, redisDR}
	var updates map[string][]string
	require.Eventually(t, func() bool {
		updates = map[string][]string{}
		for _, e := range []*env{first, second} {
			_, evs := e.pub.snapshot()
			for _, ev := range evs {
				if ev.Type == "catalog.plan.updated" {
					updates[ev.Key] = changedFields(t, ev)
				}
			}
		}
		return len(updates) >= len(upgraded)
	}, 10*time.Second, 20*time.Millisecond)
	require.Len(t, updates, len(upgraded), "%v", updates)
	for _, id := range upgraded {
		require.Equal(t, []string{"versions", "default_version"}, updates[id], id)
	}

	// A third start changes nothing more.
	third := start(t, cfg)
	require.Equal(t, []string{"7.0"}, get(third, redisDev).Versions)
	require.False(t, slices.Contains(upgraded, customID))
}

func changedFields(t *testing.T, ev eventbus.Event) []string {
	var d struct {
		ChangedFields []string `json:"changed_fields"`
	}
	require.NoError(t, json.Unmarshal(ev.Data, &d))
	return d.ChangedFields
}
