package plan

import (
	"testing"

	"github.com/stretchr/testify/require"
)

var builds = []Build{
	{Engine: MySQL, Series: "10.11", Label: "mariadb-10.11.19"},
	{Engine: Redis, Series: "7.0", Label: "redis-7.0.15"},
}

func TestSeries(t *testing.T) {
	for v, want := range map[string]string{"10.11": "10.11", "10.11.19": "10.11", "mariadb-10.11": "10.11", "7.0": "7.0", "8": "", "": "", "latest": ""} {
		require.Equal(t, want, Series(v), v)
	}
}

func TestPlanOffer(t *testing.T) {
	p := Plan{Spec: Spec{Engine: MySQL, Versions: []string{"8.0", "mariadb-10.11", "8.4"}, DefaultVersion: "8.0"}}
	o := p.Offer(builds, true)
	require.Equal(t, []string{"mariadb-10.11"}, o.Versions)
	require.Equal(t, "mariadb-10.11", o.DefaultVersion, "an unavailable default falls back to the first available")
	require.Equal(t, map[string]string{"mariadb-10.11": "mariadb-10.11.19"}, o.Labels)
	require.Equal(t, []string{"8.0", "8.4"}, o.Unavailable)

	p = Plan{Spec: Spec{Engine: Redis, Versions: []string{"7.2", "7.0"}, DefaultVersion: "7.0"}}
	o = p.Offer(builds, true)
	require.Equal(t, []string{"7.0"}, o.Versions)
	require.Equal(t, "7.0", o.DefaultVersion)
	require.Equal(t, "redis-7.0.15", o.Labels["7.0"])

	// A MySQL build does not run a Redis 10.11, and nothing runs at all.
	o = Plan{Spec: Spec{Engine: Redis, Versions: []string{"7.4"}, DefaultVersion: "7.4"}}.Offer(builds, true)
	require.Equal(t, []string{}, o.Versions)
	require.Empty(t, o.DefaultVersion)
	require.Equal(t, []string{"7.4"}, o.Unavailable)

	// Unknown builds: everything as stored, no labels.
	o = p.Offer(nil, false)
	require.Equal(t, []string{"7.2", "7.0"}, o.Versions)
	require.Equal(t, "7.0", o.DefaultVersion)
	require.Nil(t, o.Labels)
	require.Nil(t, o.Unavailable)
}

func TestServiceOffer(t *testing.T) {
	svc, _ := LookupService(MySQL)
	o := svc.Offer(builds, true)
	require.Equal(t, []string{"10.11"}, o.Versions, "one version per major.minor, the current name")
	require.Equal(t, map[string]string{"10.11": "mariadb-10.11.19"}, o.Labels)
	o = svc.Offer(nil, false)
	require.Equal(t, svc.Versions, o.Versions)
}

func TestSeedUpgrade(t *testing.T) {
	seeded, err := Seed(now)
	require.NoError(t, err)
	byID := map[string]Plan{}
	for _, p := range seeded {
		byID[p.ID] = p
	}
	old := func(id string, versions ...string) Plan {
		p := byID[id]
		p.Versions, p.DefaultVersion = versions, versions[0]
		return p
	}

	ch, ok := SeedUpgrade(old(MySQLHAID, "mariadb-10.11", "8.0", "8.4"), byID[MySQLHAID])
	require.True(t, ok)
	require.Equal(t, []string{"10.11"}, ch.Versions)
	require.Equal(t, "10.11", *ch.DefaultVersion)
	next, changed, err := old(MySQLHAID, "mariadb-10.11", "8.0", "8.4").Apply(ch, now)
	require.NoError(t, err, "the upgraded plan is valid")
	require.Equal(t, []string{"versions", "default_version"}, changed)
	require.Equal(t, []string{"10.11"}, next.Versions)

	ch, ok = SeedUpgrade(old(RedisDevID, "7.2", "7.4"), byID[RedisDevID])
	require.True(t, ok)
	require.Equal(t, []string{"7.0"}, ch.Versions)

	// Already current, changed by an admin, or not a default plan: untouched.
	_, ok = SeedUpgrade(byID[RedisDevID], byID[RedisDevID])
	require.False(t, ok)
	_, ok = SeedUpgrade(old(RedisHAID, "7.4"), byID[RedisHAID])
	require.False(t, ok, "an admin's own choice of versions stays")
	other := old(RedisDevID, "7.2", "7.4")
	other.ID = testID
	_, ok = SeedUpgrade(other, other)
	require.False(t, ok, "a user-created plan is never rewritten")
}
