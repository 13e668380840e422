package apply

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/canopy-platform/canopy/services/cdc/internal/change"
	"github.com/canopy-platform/canopy/services/cdc/internal/nodetest"
	"github.com/canopy-platform/canopy/services/cdc/internal/syncjob"
)

// Every strategy on crafted conflicts: an insert over a different row
// (exists), an update or delete of a missing row (missing), an update or
// delete whose target row is not the before image (differs). latest-wins
// compares column v; the target row has v = 5.
func TestStrategies(t *testing.T) {
	t.Parallel()
	node := nodetest.StartMariaDB(t, 1)
	target := row(1, "target", int64(5), nil)
	orig := row(1, "orig", int64(1), nil)
	src := func(v int64) []any { return row(1, "source", v, []byte{0xfe}) }
	const (
		sourceRow = "1|source|%d|FE"
		targetRow = "1|target|5|NULL"
	)
	type tc struct {
		name        string
		strategy    syncjob.Strategy
		sourceFirst bool
		existing    []any
		op          string
		before      []any
		after       []any
		kind        syncjob.ConflictKind
		res         syncjob.Resolution
		want        []string
	}
	var cases []tc
	// The outcome of each conflict under the fixed strategies.
	for _, s := range []struct {
		strategy syncjob.Strategy
		res      syncjob.Resolution
		wins     bool
	}{{syncjob.SourceWins, syncjob.ResolvedSource, true}, {syncjob.TargetWins, syncjob.ResolvedTarget, false}, {syncjob.Manual, syncjob.ResolvedPending, false}} {
		pick := func(src, tgt []string) []string {
			if s.wins {
				return src
			}
			return tgt
		}
		cases = append(cases,
			tc{name: "exists", strategy: s.strategy, existing: target, op: "c", after: src(9), kind: syncjob.KindExists, res: s.res,
				want: pick([]string{fmt.Sprintf(sourceRow, 9)}, []string{targetRow})},
			tc{name: "update-missing", strategy: s.strategy, op: "u", before: orig, after: src(9), kind: syncjob.KindMissing, res: s.res,
				want: pick([]string{fmt.Sprintf(sourceRow, 9)}, nil)},
			tc{name: "update-differs", strategy: s.strategy, existing: target, op: "u", before: orig, after: src(9), kind: syncjob.KindDiffers, res: s.res,
				want: pick([]string{fmt.Sprintf(sourceRow, 9)}, []string{targetRow})},
			tc{name: "delete-missing", strategy: s.strategy, op: "d", before: orig, kind: syncjob.KindMissing, res: s.res},
			tc{name: "delete-differs", strategy: s.strategy, existing: target, op: "d", before: orig, kind: syncjob.KindDiffers, res: s.res,
				want: pick(nil, []string{targetRow})},
		)
	}
	lw := syncjob.LatestWins
	cases = append(cases,
		tc{name: "exists-newer", strategy: lw, existing: target, op: "c", after: src(9), kind: syncjob.KindExists, res: syncjob.ResolvedSource, want: []string{fmt.Sprintf(sourceRow, 9)}},
		tc{name: "exists-older", strategy: lw, existing: target, op: "c", after: src(3), kind: syncjob.KindExists, res: syncjob.ResolvedTarget, want: []string{targetRow}},
		tc{name: "exists-null", strategy: lw, existing: target, op: "c", after: row(1, "source", nil, nil), kind: syncjob.KindExists, res: syncjob.ResolvedTarget, want: []string{targetRow}},
		tc{name: "update-differs-newer", strategy: lw, existing: target, op: "u", before: orig, after: src(9), kind: syncjob.KindDiffers, res: syncjob.ResolvedSource, want: []string{fmt.Sprintf(sourceRow, 9)}},
		tc{name: "update-differs-older", strategy: lw, existing: target, op: "u", before: orig, after: src(3), kind: syncjob.KindDiffers, res: syncjob.ResolvedTarget, want: []string{targetRow}},
		tc{name: "update-missing", strategy: lw, op: "u", before: orig, after: src(3), kind: syncjob.KindMissing, res: syncjob.ResolvedSource, want: []string{fmt.Sprintf(sourceRow, 3)}},
		tc{name: "delete-differs-target-newer", strategy: lw, existing: target, op: "d", before: orig, kind: syncjob.KindDiffers, res: syncjob.ResolvedTarget, want: []string{targetRow}},
		tc{name: "delete-differs-source-newer", strategy: lw, existing: row(1, "target", int64(0), nil), op: "d", before: orig, kind: syncjob.KindDiffers, res: syncjob.ResolvedSource},
		tc{name: "tie-source-first", strategy: lw, sourceFirst: true, existing: target, op: "u", before: orig, after: src(5), kind: syncjob.KindDiffers, res: syncjob.ResolvedSource, want: []string{fmt.Sprintf(sourceRow, 5)}},
		tc{name: "tie-target-first", strategy: lw, existing: target, op: "u", before: orig, after: src(5), kind: syncjob.KindDiffers, res: syncjob.ResolvedTarget, want: []string{targetRow}},
		tc{name: "tie-insert-source-first", strategy: lw, sourceFirst: true, existing: target, op: "c", after: src(5), kind: syncjob.KindExists, res: syncjob.ResolvedSource, want: []string{fmt.Sprintf(sourceRow, 5)}},
	)
	for i, c := range cases {
		t.Run(string(c.strategy)+"/"+c.name, func(t *testing.T) {
			t.Parallel()
			ctx := testCtx(t)
			table := fmt.Sprintf("s%d", i)
			makeTable(t, node, table)
			if c.existing != nil {
				_, err := node.Root.Exec("INSERT INTO app."+table+" VALUES (?,?,?,?)", c.existing...)
				require.NoError(t, err)
			}
			fc := &fakeConflicts{}
			cfg := baseConfig(node, fc)
			cfg.JobID, cfg.Strategy, cfg.Column, cfg.SourceFirst = "job-"+table, c.strategy, "v", c.sourceFirst
			a := open(t, cfg)
			st, err := a.Apply(ctx, batch("0-1-7", msg("0-1-7", 3, rowChange(table, c.op, c.before, c.after))))
			require.NoError(t, err)
			require.Equal(t, c.want, dump(t, node.Root, "app."+table))
			require.Equal(t, int64(1), st.Conflicts)
			got := fc.all()
			require.Len(t, got, 1)
			cf := got[0]
			require.Equal(t, c.kind, cf.Kind)
			require.Equal(t, c.res, cf.Resolution)
			require.Equal(t, c.strategy, cf.Strategy)
			require.Equal(t, "0-1-7", cf.GTID)
			require.Equal(t, 3, cf.Row)
			require.Equal(t, "app", cf.DB)
			require.Equal(t, table, cf.Table)
			require.JSONEq(t, `{"id":1}`, string(cf.Key))
			require.Equal(t, c.res == syncjob.ResolvedPending, cf.ResolvedAt == nil)
			if c.existing != nil {
				var tr map[string]any
				require.NoError(t, json.Unmarshal(cf.TargetRow, &tr))
				require.Equal(t, c.existing[1], tr["name"])
			} else {
				require.Equal(t, "null", string(cf.TargetRow))
			}
			rc, err := DecodeChange(cf.Change)
			require.NoError(t, err)
			require.Equal(t, c.op, rc.Op)
		})
	}
}

// An update of an existing row to the key of another target row: the new
// key is taken (exists); source-wins moves the row over it.
func TestKeyChangeOntoExistingRow(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	node := nodetest.StartMariaDB(t, 1)
	makeTable(t, node, "t")
	node.Exec(t, "INSERT INTO app.t VALUES (1,'a',1,NULL),(2,'other',2,NULL)")
	fc := &fakeConflicts{}
	a := open(t, baseConfig(node, fc))
	_, err := a.Apply(ctx, batch("0-1-1", msg("0-1-1", 0, rowChange("t", "u", row(1, "a", int64(1), nil), row(2, "a", int64(1), nil)))))
	require.NoError(t, err)
	require.Equal(t, []string{"2|a|1|NULL"}, dump(t, node.Root, "app.t"))
	require.Len(t, fc.all(), 1)
	require.Equal(t, syncjob.KindExists, fc.all()[0].Kind)
}

// A manual conflict parks: the target keeps its row until Resolve(source)
// forces the stored change; Resolve(target) leaves the row.
func TestManualResolve(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	node := nodetest.StartMariaDB(t, 1)
	makeTable(t, node, "t")
	node.Exec(t, "INSERT INTO app.t VALUES (1,'target',5,NULL),(2,'target',5,NULL),(3,'target',5,NULL)")
	fc := &fakeConflicts{}
	cfg := baseConfig(node, fc)
	cfg.Strategy = syncjob.Manual
	a := open(t, cfg)
	bin := []byte{0x00, 0xc3, 0x28} // not UTF-8: stored as base64
	st, err := a.Apply(ctx, batch("0-1-1",
		msg("0-1-1", 0, rowChange("t", "u", row(1, "orig", int64(1), nil), row(1, "source", int64(9), bin))),
		msg("0-1-1", 1, rowChange("t", "d", row(2, "orig", int64(1), nil), nil)),
		// A key change: 3 → 30.
		msg("0-1-1", 2, rowChange("t", "u", row(3, "orig", int64(1), nil), row(30, "moved", nil, nil))),
		msg("0-1-1", 3, rowChange("t", "c", nil, row(4, "fine", nil, nil))),
	))
	require.NoError(t, err)
	require.Equal(t, int64(1), st.Applied)
	require.Equal(t, int64(3), st.Conflicts)
	parked := []string{"1|target|5|NULL", "2|target|5|NULL", "3|target|5|NULL", "4|fine|NULL|NULL"}
	require.Equal(t, parked, dump(t, node.Root, "app.t"))
	cs := fc.all()
	require.Len(t, cs, 3)
	for _, c := range cs {
		require.Equal(t, syncjob.ResolvedPending, c.Resolution)
	}
	require.Contains(t, string(cs[0].Change), `{"base64":"AMMo"}`)

	require.NoError(t, a.Resolve(ctx, cs[1], syncjob.ResolvedTarget))
	require.Equal(t, parked, dump(t, node.Root, "app.t"))
	posBefore := node.Pos(t)
	for _, c := range cs {
		require.NoError(t, a.Resolve(ctx, c, syncjob.ResolvedSource))
	}
	require.Equal(t, []string{"1|source|9|00C328", "4|fine|NULL|NULL", "30|moved|NULL|NULL"}, dump(t, node.Root, "app.t"))
	require.NotEqual(t, posBefore, node.Pos(t))
	require.Contains(t, node.Pos(t), fmt.Sprintf("-%d-", jobServerID), "resolutions are written with the job's server id")
	// Resolving again is harmless.
	require.NoError(t, a.Resolve(ctx, cs[0], syncjob.ResolvedSource))
}

func TestEncodeChangeRoundTrip(t *testing.T) {
	rc := change.RowChange{DB: "app", Table: "t", Op: "u", Columns: []string{"a", "b", "c", "d", "e", "f", "g", "h"}, Key: []int{0, 1},
		Before: []any{int64(-3), uint64(18446744073709551615), float64(1.5), float32(0.25), "héllo", []byte{0xff, 0x00}, nil, []byte("text")},
		After:  []any{int64(7), uint64(1), float64(2), float32(1e10), "", []byte{}, nil, []byte("2024-01-02 03:04:05")}}
	b, err := EncodeChange(rc)
	require.NoError(t, err)
	got, err := DecodeChange(b)
	require.NoError(t, err)
	require.Equal(t, change.RowChange{DB: "app", Table: "t", Op: "u", Columns: rc.Columns, Key: rc.Key,
		Before: []any{int64(-3), uint64(18446744073709551615), float64(1.5), float64(0.25), "héllo", []byte{0xff, 0x00}, nil, "text"},
		After:  []any{int64(7), int64(1), float64(2), float64(1e10), "", "", nil, "2024-01-02 03:04:05"}}, got)
	ins := change.RowChange{DB: "d", Table: "t", Op: "c", Columns: []string{"a"}, Key: []int{0}, After: []any{int64(1)}}
	b, err = EncodeChange(ins)
	require.NoError(t, err)
	got, err = DecodeChange(b)
	require.NoError(t, err)
	require.Nil(t, got.Before)
	require.Equal(t, ins, got)
}
