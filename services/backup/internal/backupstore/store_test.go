package backupstore_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/canopy-platform/canopy/api/events"
	"github.com/canopy-platform/canopy/libs/eventbus"

	"github.com/canopy-platform/canopy/services/backup/internal/backup"
	"github.com/canopy-platform/canopy/services/backup/internal/backupstore"
)

func instances() []backup.Instance {
	return []backup.Instance{
		{ID: "i1", TenantID: "acme", Name: "shop", Engine: backup.EngineMySQL, PlanID: "mysql-small", State: "ready",
			Nodes: []backup.Node{{ID: "n1", Role: "primary"}}, Admin: backup.Credentials{Username: "canopy", Password: "secret"}},
		{ID: "i2", TenantID: "acme", Name: "cache", Engine: backup.EngineRedis, PlanID: "redis-small", State: "ready"},
		{ID: "i3", TenantID: "globex", Name: "other", Engine: backup.EngineMySQL, PlanID: "mysql-small", State: "ready"},
	}
}

func TestInstances(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	ctx := context.Background()
	require.NoError(t, s.UpsertInstances(ctx, instances()))

	got, err := s.GetInstance(ctx, "acme", "i1")
	require.NoError(t, err)
	require.Equal(t, backup.Instance{ID: "i1", TenantID: "acme", Name: "shop", Engine: backup.EngineMySQL, PlanID: "mysql-small", State: "ready"}, got,
		"nodes and credentials are not stored")

	_, err = s.GetInstance(ctx, "acme", "i3")
	require.ErrorIs(t, err, backup.ErrNotFound, "another tenant's instance")
	_, err = s.GetInstance(ctx, "acme", "nope")
	require.ErrorIs(t, err, backup.ErrNotFound)
	got, err = s.GetInstance(ctx, "", "i3")
	require.NoError(t, err, "any tenant")
	require.Equal(t, "globex", got.TenantID)

	deletedAt := t0.Add(time.Hour)
	require.NoError(t, s.MarkDeleted(ctx, []string{"i2", "i3"}, deletedAt))
	require.NoError(t, s.MarkDeleted(ctx, []string{"i2"}, deletedAt.Add(time.Hour)), "marked already: kept")
	all, err := s.ListInstances(ctx)
	require.NoError(t, err)
	require.Len(t, all, 3)
	require.True(t, all[0].DeletedAt.IsZero())
	require.Equal(t, deletedAt, all[1].DeletedAt)
	require.Equal(t, deletedAt, all[2].DeletedAt)

	// Listed again by provisioning: no longer deleted, renamed.
	again := instances()[1]
	again.Name = "cache2"
	require.NoError(t, s.UpsertInstances(ctx, []backup.Instance{again}))
	got, err = s.GetInstance(ctx, "acme", "i2")
	require.NoError(t, err)
	require.True(t, got.DeletedAt.IsZero())
	require.Equal(t, "cache2", got.Name)
}

func TestPolicyOverrides(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	ctx := context.Background()
	_, ok, err := s.PolicyOverride(ctx, backupstore.ScopePlan, "mysql-small")
	require.NoError(t, err)
	require.False(t, ok)

	days, start := 3, 90*time.Minute
	o := backup.PolicyOverride{PITRDays: &days, WindowStart: &start}
	require.NoError(t, s.SetPolicyOverride(ctx, backupstore.ScopePlan, "mysql-small", o))
	got, ok, err := s.PolicyOverride(ctx, backupstore.ScopePlan, "mysql-small")
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, o, got)
	_, ok, err = s.PolicyOverride(ctx, backupstore.ScopeInstance, "mysql-small")
	require.NoError(t, err)
	require.False(t, ok, "scopes are apart")

	off := false
	require.NoError(t, s.SetPolicyOverride(ctx, backupstore.ScopePlan, "mysql-small", backup.PolicyOverride{Enabled: &off}))
	got, _, err = s.PolicyOverride(ctx, backupstore.ScopePlan, "mysql-small")
	require.NoError(t, err)
	require.Equal(t, backup.PolicyOverride{Enabled: &off}, got, "replaced, not merged")

	require.ErrorIs(t, s.SetPolicyOverride(ctx, "tenant", "x", o), backup.ErrInvalid)
}

func newBackup(id, instance string, started time.Time) backup.Backup {
	tenant := "acme"
	if instance == "i3" {
		tenant = "globex"
	}
	return backup.Backup{ID: id, TenantID: tenant, InstanceID: instance, Engine: backup.EngineMySQL, Kind: backup.KindFull,
		Trigger: backup.TriggerScheduled, Status: backup.StatusRunning, NodeID: "n2", FromReplica: true, StartedAt: started}
}

func completed(b backup.Backup) backup.Backup {
	b.Status = backup.StatusCompleted
	b.FinishedAt = b.StartedAt.Add(5 * time.Minute)
	b.ConsistentAt = b.StartedAt.Add(4 * time.Minute)
	b.DataBytes, b.StoredBytes = 1<<20, 300<<10
	b.GTID = "0-1-42,1-2-7"
	b.Verified, b.VerifiedAt = true, b.FinishedAt.Add(time.Minute)
	b.Stats = &backup.DataStats{Tables: 2, Sample: []backup.TableStat{{Schema: "shop", Table: "orders", Rows: 10, Checksum: 1234567890123, CheckOK: true}}}
	b.Objects = []backup.Object{{Key: "acme/i1/backups/" + b.ID + "/data", SHA256: "ab12", Size: 300 << 10, PlainSize: 1 << 20}}
	b.WrappedKey = []byte{0x00, 0xff, 0x10, 0x80}
	b.Copies = []string{"primary", "secondary"}
	return b
}

func outcome(t testing.TB, b backup.Backup, typ string) eventbus.Event {
	data, err := json.Marshal(events.BackupOutcome{BackupID: b.ID, TenantID: b.TenantID, InstanceID: b.InstanceID})
	require.NoError(t, err)
	return eventbus.Event{Type: typ, Source: events.SourceBackup, Subject: b.ID, Key: b.InstanceID, Tenant: b.TenantID, Data: data}
}

func TestBackupLifecycle(t *testing.T) {
	t.Parallel()
	s, db := newStore(t)
	ctx := context.Background()
	require.NoError(t, s.UpsertInstances(ctx, instances()))

	b := newBackup("b1", "i1", t0)
	require.NoError(t, s.CreateBackup(ctx, b))
	got, err := s.GetBackup(ctx, "acme", "i1", "b1")
	require.NoError(t, err)
	require.Equal(t, b, got)

	running, err := s.RunningBackups(ctx)
	require.NoError(t, err)
	require.Equal(t, []backup.Backup{b}, running)

	done := completed(b)
	require.NoError(t, s.UpdateBackup(ctx, done, outcome(t, done, events.TypeBackupCompleted)))
	got, err = s.GetBackup(ctx, "acme", "i1", "b1")
	require.NoError(t, err)
	require.Equal(t, done, got, "objects, stats, wrapped key and copies round-trip")
	require.Equal(t, []string{events.TypeBackupCompleted}, outboxTypes(t, db))

	running, err = s.RunningBackups(ctx)
	require.NoError(t, err)
	require.Empty(t, running)

	// Tenant scoping.
	_, err = s.GetBackup(ctx, "globex", "i1", "b1")
	require.ErrorIs(t, err, backup.ErrNotFound, "another tenant's backup")
	_, err = s.GetBackup(ctx, "acme", "i2", "b1")
	require.ErrorIs(t, err, backup.ErrNotFound, "another instance's backup")
	_, err = s.GetBackup(ctx, "", "", "b1")
	require.NoError(t, err, "any tenant")

	require.ErrorIs(t, s.UpdateBackup(ctx, newBackup("nope", "i1", t0)), backup.ErrNotFound)
}

func TestCreateBackupBusy(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	ctx := context.Background()
	first := newBackup("b1", "i1", t0)
	require.NoError(t, s.CreateBackup(ctx, first))
	require.ErrorIs(t, s.CreateBackup(ctx, newBackup("b2", "i1", t0.Add(time.Minute))), backup.ErrBusy)
	require.NoError(t, s.CreateBackup(ctx, newBackup("b3", "i2", t0)), "another instance may run one")

	// Once the first ends another may start; failed ones do not block.
	failed := first
	failed.Status, failed.Error, failed.FinishedAt = backup.StatusFailed, "interrupted", t0.Add(time.Minute)
	require.NoError(t, s.UpdateBackup(ctx, failed))
	require.NoError(t, s.CreateBackup(ctx, newBackup("b2", "i1", t0.Add(2*time.Minute))))

	// Two processes racing: exactly one wins.
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = s.CreateBackup(ctx, newBackup(fmt.Sprintf("race%d", i), "i9", t0))
		}()
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		if err == nil {
			ok++
			continue
		}
		require.ErrorIs(t, err, backup.ErrBusy)
	}
	require.Equal(t, 1, ok)
}

func TestListBackupsPaging(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	ctx := context.Background()
	require.NoError(t, s.UpsertInstances(ctx, instances()))
	// Seven backups of i1 (two started at the same moment), one of i3.
	var ids []string
	for i := range 7 {
		started := t0.Add(time.Duration(i) * time.Hour)
		if i == 4 {
			started = t0.Add(3 * time.Hour)
		}
		b := completed(newBackup(fmt.Sprintf("b%d", i), "i1", started))
		require.NoError(t, s.CreateBackup(ctx, b))
		ids = append(ids, b.ID)
	}
	require.NoError(t, s.CreateBackup(ctx, completed(newBackup("x", "i3", t0))))
	// Newest first; b4 and b3 started together: id breaks the tie.
	want := []string{"b6", "b5", "b4", "b3", "b2", "b1", "b0"}

	var got []string
	after := ""
	for pages := 0; ; pages++ {
		require.Less(t, pages, 10)
		page, err := s.ListBackups(ctx, "acme", "i1", after, 3)
		require.NoError(t, err)
		require.LessOrEqual(t, len(page), 3)
		for _, b := range page {
			got = append(got, b.ID)
		}
		if len(page) < 3 {
			break
		}
		after = page[len(page)-1].ID
	}
	require.Equal(t, want, got)

	_, err := s.ListBackups(ctx, "globex", "i1", "", 10)
	require.ErrorIs(t, err, backup.ErrNotFound, "another tenant's instance")
	_, err = s.ListBackups(ctx, "acme", "i1", "x", 10)
	require.ErrorIs(t, err, backup.ErrInvalid, "a cursor of another instance")

	// A deleted instance's backups stay listable.
	require.NoError(t, s.MarkDeleted(ctx, []string{"i1"}, t0.Add(24*time.Hour)))
	page, err := s.ListBackups(ctx, "acme", "i1", "", 100)
	require.NoError(t, err)
	require.Len(t, page, 7)

	all, err := s.AllBackups(ctx, "i1")
	require.NoError(t, err)
	require.Len(t, all, 7)
	require.Equal(t, "b0", all[0].ID, "oldest first")
	require.Equal(t, "b6", all[6].ID)
}

func segment(instance string, seq int64) backup.Segment {
	first := t0.Add(time.Duration(seq) * time.Minute)
	return backup.Segment{TenantID: "acme", InstanceID: instance, Seq: seq,
		Object:     backup.Object{Key: fmt.Sprintf("acme/%s/binlog/%012d", instance, seq), SHA256: "cd34", Size: 100, PlainSize: 400},
		WrappedKey: []byte{byte(seq), 0, 1}, StartPos: fmt.Sprintf("0-1-%d", (seq-1)*10), EndPos: fmt.Sprintf("0-1-%d", seq*10),
		FirstAt: first, LastAt: first.Add(50 * time.Second), Transactions: 10, SourceNode: "n1", ArchivedAt: first.Add(time.Minute)}
}

func TestSegments(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	ctx := context.Background()

	_, ok, err := s.LastSegment(ctx, "i1")
	require.NoError(t, err)
	require.False(t, ok)

	require.ErrorIs(t, s.AppendSegment(ctx, segment("i1", 2)), backupstore.ErrSeq, "the first is 1")
	for seq := int64(1); seq <= 5; seq++ {
		require.NoError(t, s.AppendSegment(ctx, segment("i1", seq)))
	}
	require.ErrorIs(t, s.AppendSegment(ctx, segment("i1", 5)), backupstore.ErrSeq, "appended already")
	require.ErrorIs(t, s.AppendSegment(ctx, segment("i1", 7)), backupstore.ErrSeq, "a hole")
	require.NoError(t, s.AppendSegment(ctx, segment("i2", 1)), "each instance counts apart")

	last, ok, err := s.LastSegment(ctx, "i1")
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, segment("i1", 5), last)

	got, err := s.Segments(ctx, "i1", 3)
	require.NoError(t, err)
	require.Equal(t, []backup.Segment{segment("i1", 3), segment("i1", 4), segment("i1", 5)}, got)

	require.NoError(t, s.DeleteSegments(ctx, "i1", []int64{1, 2, 3}))
	got, err = s.Segments(ctx, "i1", 0)
	require.NoError(t, err)
	require.Len(t, got, 2)
	require.Equal(t, int64(4), got[0].Seq)
	require.NoError(t, s.AppendSegment(ctx, segment("i1", 6)), "the chain continues after retention")
	require.ErrorIs(t, s.AppendSegment(ctx, segment("i1", 1)), backupstore.ErrSeq)

	// Concurrent archivers of one instance: one append per seq.
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = s.AppendSegment(ctx, segment("i1", 7))
		}()
	}
	wg.Wait()
	ok2 := 0
	for _, err := range errs {
		if err == nil {
			ok2++
			continue
		}
		require.True(t, errors.Is(err, backupstore.ErrSeq), "got %v", err)
	}
	require.Equal(t, 1, ok2)
}

func TestRestores(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	ctx := context.Background()
	b := completed(newBackup("b1", "i1", t0))
	r := backup.Restore{ID: "r1", TenantID: "acme", SourceInstanceID: "i1", TargetInstanceID: "i7", Engine: backup.EngineMySQL,
		Target: backup.Target{PointInTime: t0.Add(2 * time.Hour)},
		Plan: backup.RestorePlan{Backup: b, Segments: []backup.Segment{segment("i1", 1), segment("i1", 2)},
			StopBefore: t0.Add(2*time.Hour + time.Second)},
		Status: backup.RestorePending, CreatedAt: t0, UpdatedAt: t0}
	require.NoError(t, s.CreateRestore(ctx, r))
	got, err := s.GetRestore(ctx, "r1")
	require.NoError(t, err)
	require.Equal(t, r, got, "the plan keeps the wrapped keys")

	r.Status, r.Phase, r.UpdatedAt = backup.RestoreRunning, backup.PhaseReplaying, t0.Add(time.Minute)
	require.NoError(t, s.UpdateRestore(ctx, r))
	r2 := r
	r2.ID, r2.Status, r2.Seed, r2.ReachedGTID = "r2", backup.RestoreReady, "/state/seeds/r2", "0-1-20"
	require.NoError(t, s.CreateRestore(ctx, r2))
	r3 := r
	r3.ID, r3.Status, r3.Error = "r3", backup.RestoreFailed, "restore: object acme/i1/binlog/000000000002 is missing"
	require.NoError(t, s.CreateRestore(ctx, r3))

	active, err := s.ActiveRestores(ctx)
	require.NoError(t, err)
	require.Equal(t, []backup.Restore{r, r2}, active)

	_, err = s.GetRestore(ctx, "nope")
	require.ErrorIs(t, err, backup.ErrNotFound)
	require.ErrorIs(t, s.UpdateRestore(ctx, backup.Restore{ID: "nope"}), backup.ErrNotFound)
}

func TestDrills(t *testing.T) {
	t.Parallel()
	s, db := newStore(t)
	ctx := context.Background()
	d := backup.Drill{ID: "d1", TenantID: "acme", InstanceID: "i1", BackupID: "b1", Status: backup.DrillRunning, StartedAt: t0}
	require.NoError(t, s.CreateDrill(ctx, d))
	d2 := backup.Drill{ID: "d2", TenantID: "acme", InstanceID: "i1", BackupID: "b2", Status: backup.DrillRunning, StartedAt: t0.Add(time.Hour)}
	require.NoError(t, s.CreateDrill(ctx, d2))

	running, err := s.RunningDrills(ctx)
	require.NoError(t, err)
	require.Equal(t, []backup.Drill{d, d2}, running)

	d.Status, d.ScratchInstanceID, d.FinishedAt, d.RestoreSeconds = backup.DrillFailed, "i-scratch", t0.Add(10*time.Minute), 42.5
	d.Expected = &backup.DataStats{Tables: 2}
	d.Measured = &backup.DataStats{Tables: 1}
	d.Mismatches = []string{"tables: 2 != 1"}
	ev := eventbus.Event{Type: events.TypeDrillFailed, Source: events.SourceBackup, Key: "i1", Data: []byte(`{}`)}
	require.NoError(t, s.UpdateDrill(ctx, d, ev))
	// The scratch instance is known as one; the drilled instance is not.
	scratch, err := s.IsScratch(ctx, "i-scratch")
	require.NoError(t, err)
	require.True(t, scratch)
	scratch, err = s.IsScratch(ctx, d.InstanceID)
	require.NoError(t, err)
	require.False(t, scratch)
	require.Equal(t, []string{events.TypeDrillFailed}, outboxTypes(t, db))

	list, err := s.ListDrills(ctx, "acme", "i1", 10)
	require.NoError(t, err)
	require.Equal(t, []backup.Drill{d2, d}, list, "newest first")
	list, err = s.ListDrills(ctx, "globex", "i1", 10)
	require.NoError(t, err)
	require.Empty(t, list, "another tenant sees none")
	list, err = s.ListDrills(ctx, "acme", "i1", 1)
	require.NoError(t, err)
	require.Len(t, list, 1)

	require.ErrorIs(t, s.UpdateDrill(ctx, backup.Drill{ID: "nope", StartedAt: t0}), backup.ErrNotFound)
}

func TestEventsOnlyWithTheirChange(t *testing.T) {
	t.Parallel()
	s, db := newStore(t)
	ctx := context.Background()
	// A failed update writes no event: same transaction.
	err := s.UpdateBackup(ctx, newBackup("nope", "i1", t0), outcome(t, newBackup("nope", "i1", t0), events.TypeBackupFailed))
	require.ErrorIs(t, err, backup.ErrNotFound)
	require.Empty(t, outboxTypes(t, db))

	// An event that cannot be written rolls the change back.
	b := newBackup("b1", "i1", t0)
	require.NoError(t, s.CreateBackup(ctx, b))
	err = s.UpdateBackup(ctx, completed(b), eventbus.Event{Data: []byte(`{}`)})
	require.Error(t, err)
	got, err := s.GetBackup(ctx, "", "", "b1")
	require.NoError(t, err)
	require.Equal(t, backup.StatusRunning, got.Status)
	require.Empty(t, outboxTypes(t, db))

	lag := eventbus.Event{Type: events.TypeArchiveLagging, Source: events.SourceBackup, Key: "i1", Data: []byte(`{}`)}
	require.NoError(t, s.Emit(ctx, lag))
	require.Equal(t, []string{events.TypeArchiveLagging}, outboxTypes(t, db))
}
