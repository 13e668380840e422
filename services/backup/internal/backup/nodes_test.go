package backup_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/canopy-platform/canopy/services/backup/internal/backup"
)

func TestChooseSource(t *testing.T) {
	t.Parallel()
	node := func(id, role, region string, healthy bool) backup.Node {
		return backup.Node{ID: id, Role: role, Region: region, Healthy: healthy}
	}
	tests := []struct {
		name        string
		nodes       []backup.Node
		want        string
		fromReplica bool
		wantErr     bool
	}{
		{name: "replica preferred", nodes: []backup.Node{node("p", "primary", "eu", true), node("r", "replica", "eu", true)}, want: "r", fromReplica: true},
		{name: "replica in the primary's region preferred", nodes: []backup.Node{
			node("p", "primary", "eu", true), node("r1", "replica", "us", true), node("r2", "replica", "eu", true)}, want: "r2", fromReplica: true},
		{name: "first replica when none shares the region", nodes: []backup.Node{
			node("p", "primary", "eu", true), node("r1", "replica", "us", true), node("r2", "replica", "ap", true)}, want: "r1", fromReplica: true},
		{name: "unhealthy replica skipped", nodes: []backup.Node{
			node("p", "primary", "eu", true), node("r1", "replica", "eu", false), node("r2", "replica", "us", true)}, want: "r2", fromReplica: true},
		{name: "fenced never", nodes: []backup.Node{node("old", "fenced", "eu", true), node("p", "primary", "eu", true)}, want: "p"},
		{name: "primary fallback", nodes: []backup.Node{node("p", "primary", "eu", true), node("r", "replica", "eu", false)}, want: "p"},
		{name: "only fenced and unhealthy: none", nodes: []backup.Node{node("old", "fenced", "eu", true), node("p", "primary", "eu", false)}, wantErr: true},
		{name: "no nodes", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n, fromReplica, err := backup.ChooseSource(backup.Instance{ID: "i1", Nodes: tc.nodes})
			if tc.wantErr {
				require.ErrorIs(t, err, backup.ErrNoSource)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, n.ID)
			require.Equal(t, tc.fromReplica, fromReplica)
		})
	}
}

func TestPrimary(t *testing.T) {
	t.Parallel()
	in := backup.Instance{ID: "i1", Nodes: []backup.Node{
		{ID: "old", Role: "fenced"}, {ID: "r", Role: "replica", Healthy: true}, {ID: "p", Role: "primary"},
	}}
	p, err := backup.Primary(in)
	require.NoError(t, err)
	require.Equal(t, "p", p.ID)
	in.Nodes = append([]backup.Node{{ID: "p0", Role: "primary"}}, backup.Node{ID: "p2", Role: "primary", Healthy: true})
	p, err = backup.Primary(in)
	require.NoError(t, err)
	require.Equal(t, "p2", p.ID, "a healthy primary wins")
	_, err = backup.Primary(backup.Instance{ID: "i1", Nodes: []backup.Node{{ID: "r", Role: "replica"}}})
	require.ErrorIs(t, err, backup.ErrNoPrimary)
}

func TestCompareStats(t *testing.T) {
	t.Parallel()
	exp := backup.DataStats{Tables: 3, Keys: 0, Sample: []backup.TableStat{
		{Schema: "shop", Table: "orders", Rows: 10, Checksum: 111, CheckOK: true},
		{Schema: "shop", Table: "items", Rows: 5, Checksum: 222, CheckOK: true},
		{Schema: "shop", Table: "gone", Rows: 1, Checksum: 3, CheckOK: true},
	}}
	require.Empty(t, backup.CompareStats(exp, exp))
	got := backup.DataStats{Tables: 2, Keys: 4, Sample: []backup.TableStat{
		{Schema: "shop", Table: "orders", Rows: 11, Checksum: 111, CheckOK: true},
		{Schema: "shop", Table: "items", Rows: 5, Checksum: 999, CheckOK: false},
		{Schema: "shop", Table: "extra", Rows: 5},
	}}
	require.Equal(t, []string{
		"tables: 3 != 2",
		"keys: 0 != 4",
		"shop.orders: rows 10 != 11",
		"shop.items: checksum 222 != 999",
		"shop.items: check ok != failed",
		"shop.gone: missing",
	}, backup.CompareStats(exp, got))
}
