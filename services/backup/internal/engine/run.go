package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/canopy-platform/canopy/api/events"
	"github.com/canopy-platform/canopy/libs/eventbus"

	"github.com/canopy-platform/canopy/services/backup/internal/backup"
	"github.com/canopy-platform/canopy/services/backup/internal/mysqlphys"
	"github.com/canopy-platform/canopy/services/backup/internal/redissnap"
	"github.com/canopy-platform/canopy/services/backup/internal/repo"
)

// errInterrupted is the error of a backup its process did not finish.
const errInterrupted = "interrupted"

// Repository names in Backup.Copies.
const (
	copyPrimary   = "primary"
	copySecondary = "secondary"
)

// manifest is the sealed manifest.json stored next to a backup's data, so
// that the repository alone says what a backup holds.
type manifest struct {
	BackupID     string            `json:"backup_id"`
	TenantID     string            `json:"tenant_id"`
	InstanceID   string            `json:"instance_id"`
	Engine       backup.Engine     `json:"engine"`
	Kind         backup.Kind       `json:"kind"`
	NodeID       string            `json:"node_id"`
	StartedAt    time.Time         `json:"started_at"`
	ConsistentAt time.Time         `json:"consistent_at,omitzero"`
	GTID         string            `json:"gtid,omitempty"`
	Offset       int64             `json:"offset,omitempty"`
	DataBytes    int64             `json:"data_bytes"`
	Objects      []backup.Object   `json:"objects"`
	Stats        *backup.DataStats `json:"stats,omitempty"`
}

// backupPrefix is the repository folder of one backup's objects.
func backupPrefix(tenant, instanceID, id string) string {
	return fmt.Sprintf("%s/%s/backups/%s/", tenant, instanceID, id)
}

// start records a running backup of in and runs it in the background,
// owned by the active run; it returns the running record.
func (e *Engine) start(ctx context.Context, in backup.Instance, trigger backup.Trigger) (backup.Backup, error) {
	e.mu.Lock()
	runCtx := e.runCtx
	_, busy := e.inflight[in.ID]
	e.mu.Unlock()
	if runCtx == nil {
		return backup.Backup{}, ErrNotActive
	}
	if busy {
		return backup.Backup{}, fmt.Errorf("backup instance %s: %w", in.ID, backup.ErrBusy)
	}
	src, fromReplica, err := backup.ChooseSource(in)
	if err != nil {
		return backup.Backup{}, fmt.Errorf("backup instance %s: choose source: %w", in.ID, err)
	}
	kind := backup.KindFull
	if in.Engine == backup.EngineRedis {
		kind = backup.KindSnapshot
	}
	b := backup.Backup{
		ID: newID(), TenantID: in.TenantID, InstanceID: in.ID, Engine: in.Engine, Kind: kind,
		Trigger: trigger, Status: backup.StatusRunning, NodeID: src.ID, FromReplica: fromReplica,
		StartedAt: e.now().UTC(),
	}
	dataKey, err := repo.NewDataKey()
	if err != nil {
		return backup.Backup{}, fmt.Errorf("backup instance %s: data key: %w", in.ID, err)
	}
	if b.WrappedKey, err = repo.WrapKey(e.box, dataKey, b.ID); err != nil {
		return backup.Backup{}, fmt.Errorf("backup instance %s: wrap data key: %w", in.ID, err)
	}

	// Claim the instance before the row: two starts in this process must
	// not both reach CreateBackup's check at once.
	e.mu.Lock()
	if _, busy := e.inflight[in.ID]; busy {
		e.mu.Unlock()
		return backup.Backup{}, fmt.Errorf("backup instance %s: %w", in.ID, backup.ErrBusy)
	}
	e.inflight[in.ID] = b.ID
	e.mu.Unlock()
	release := func() {
		e.mu.Lock()
		delete(e.inflight, in.ID)
		e.mu.Unlock()
	}
	if err := e.st.CreateBackup(ctx, b); err != nil {
		release()
		return backup.Backup{}, fmt.Errorf("backup instance %s: record: %w", in.ID, err)
	}
	e.log.InfoContext(ctx, "backup started", slog.String("tenant", b.TenantID), slog.String("instance", b.InstanceID),
		slog.String("backup", b.ID), slog.String("trigger", string(trigger)), slog.String("node", src.ID),
		slog.Bool("from_replica", fromReplica))

	e.backups.Add(1)
	go func() {
		defer e.backups.Done()
		defer release()
		select {
		case e.sem <- struct{}{}:
		case <-runCtx.Done():
			return // left running: the next Run marks it interrupted
		}
		defer func() { <-e.sem }()
		e.run(runCtx, in, src, b, dataKey)
	}()
	return b, nil
}

// run takes the backup and records its outcome. A run cut short by the
// engine stopping is left as it is: the next active engine finds it
// running and cleans it up.
func (e *Engine) run(ctx context.Context, in backup.Instance, src backup.Node, b backup.Backup, dataKey []byte) {
	var err error
	switch in.Engine {
	case backup.EngineMySQL:
		b, err = e.takeMySQL(ctx, in, src, b, dataKey)
	case backup.EngineRedis:
		b, err = e.takeRedis(ctx, in, src, b, dataKey)
	default:
		err = fmt.Errorf("engine %q has no backups: %w", in.Engine, backup.ErrInvalid)
	}
	if err == nil {
		b, err = e.finish(ctx, b, dataKey)
	}
	if err != nil {
		if ctx.Err() != nil {
			e.log.WarnContext(ctx, "backup interrupted by the engine stopping", slog.String("tenant", b.TenantID),
				slog.String("instance", b.InstanceID), slog.String("backup", b.ID))
			return
		}
		e.fail(ctx, b, err.Error())
		return
	}
	e.complete(ctx, b)
}

// takeMySQL streams mariadb-backup into the repository and, with Verify,
// prepares and inspects what was stored.
func (e *Engine) takeMySQL(ctx context.Context, in backup.Instance, src backup.Node, b backup.Backup, dataKey []byte) (backup.Backup, error) {
	key := backupPrefix(b.TenantID, b.InstanceID, b.ID) + "data"
	var res mysqlphys.Result
	obj, err := e.stream(ctx, key, dataKey, func(w io.Writer) error {
		var err error
		res, err = e.phys.Backup(ctx, mysqlphys.Source{Address: src.Address, DataDir: src.DataDir,
			User: in.Admin.Username, Password: in.Admin.Password}, w)
		return err
	})
	if err != nil {
		return b, err
	}
	b.Objects = []backup.Object{obj}
	b.GTID, b.DataBytes, b.ConsistentAt = res.GTID, res.DataBytes, res.ConsistentAt.UTC()
	if !e.cfg.Verify {
		return b, nil
	}
	dir := filepath.Join(e.cfg.WorkDir, b.ID)
	defer func() {
		if err := os.RemoveAll(dir); err != nil {
			e.log.WarnContext(ctx, "remove verification dir", slog.String("dir", dir), slog.Any("err", err))
		}
	}()
	rc, err := repo.Open(ctx, e.blobs, obj, dataKey)
	if err != nil {
		return b, fmt.Errorf("verify: open %s: %w", key, err)
	}
	gtid, err := e.phys.Prepare(ctx, rc, dir)
	rc.Close()
	if err != nil {
		return b, fmt.Errorf("verify: prepare: %w", err)
	}
	if b.GTID == "" {
		b.GTID = gtid
	}
	stats, err := e.phys.Inspect(ctx, dir, e.cfg.Sample)
	if err != nil {
		return b, fmt.Errorf("verify: inspect: %w", err)
	}
	b.Stats, b.Verified, b.VerifiedAt = &stats, true, e.now().UTC()
	return b, nil
}

// takeRedis copies a fresh RDB snapshot into the repository and checks it
// loads (a scratch redis-server counts its keys).
func (e *Engine) takeRedis(ctx context.Context, in backup.Instance, src backup.Node, b backup.Backup, dataKey []byte) (backup.Backup, error) {
	key := backupPrefix(b.TenantID, b.InstanceID, b.ID) + "data"
	var res redissnap.Result
	obj, err := e.stream(ctx, key, dataKey, func(w io.Writer) error {
		var err error
		res, err = redissnap.Snapshot(ctx, redissnap.Source{Address: src.Address, DataDir: src.DataDir,
			User: in.Admin.Username, Password: in.Admin.Password}, w)
		return err
	})
	if err != nil {
		return b, err
	}
	b.Objects = []backup.Object{obj}
	b.DataBytes, b.ConsistentAt, b.Offset = res.DataBytes, res.ConsistentAt.UTC(), res.Offset

	dir := filepath.Join(e.cfg.WorkDir, b.ID)
	defer func() {
		if err := os.RemoveAll(dir); err != nil {
			e.log.WarnContext(ctx, "remove verification dir", slog.String("dir", dir), slog.Any("err", err))
		}
	}()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return b, fmt.Errorf("verify: %w", err)
	}
	path := filepath.Join(dir, "dump.rdb")
	if err := e.fetch(ctx, obj, dataKey, path); err != nil {
		return b, fmt.Errorf("verify: %w", err)
	}
	keys, err := redissnap.Inspect(ctx, e.cfg.RedisServer, dir, path)
	if err != nil {
		return b, fmt.Errorf("verify: inspect: %w", err)
	}
	b.Stats, b.Verified, b.VerifiedAt = &backup.DataStats{Keys: keys}, true, e.now().UTC()
	return b, nil
}

// stream runs produce writing into a pipe that repo.Seal reads into key;
// the producer's error wins over Seal's (which is then only its echo).
func (e *Engine) stream(ctx context.Context, key string, dataKey []byte, produce func(io.Writer) error) (backup.Object, error) {
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := produce(pw)
		pw.CloseWithError(err) // nil closes with io.EOF
		done <- err
	}()
	obj, sealErr := repo.Seal(ctx, e.blobs, key, dataKey, pr)
	// A Seal that stopped reading must not leave the producer blocked.
	pr.CloseWithError(errors.New("repository stopped reading"))
	prodErr := <-done
	switch {
	case prodErr != nil:
		return obj, fmt.Errorf("take: %w", prodErr)
	case sealErr != nil:
		return obj, fmt.Errorf("seal %s: %w", key, sealErr)
	}
	return obj, nil
}

// fetch writes an object's plaintext into path.
func (e *Engine) fetch(ctx context.Context, obj backup.Object, dataKey []byte, path string) error {
	rc, err := repo.Open(ctx, e.blobs, obj, dataKey)
	if err != nil {
		return fmt.Errorf("open %s: %w", obj.Key, err)
	}
	defer rc.Close()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, rc); err != nil {
		f.Close()
		return fmt.Errorf("read %s: %w", obj.Key, err)
	}
	return f.Close()
}

// finish writes the manifest and the secondary copy.
func (e *Engine) finish(ctx context.Context, b backup.Backup, dataKey []byte) (backup.Backup, error) {
	mf := manifest{BackupID: b.ID, TenantID: b.TenantID, InstanceID: b.InstanceID, Engine: b.Engine, Kind: b.Kind,
		NodeID: b.NodeID, StartedAt: b.StartedAt, ConsistentAt: b.ConsistentAt, GTID: b.GTID, Offset: b.Offset,
		DataBytes: b.DataBytes, Objects: b.Objects, Stats: b.Stats}
	raw, err := json.MarshalIndent(mf, "", "  ")
	if err != nil {
		return b, fmt.Errorf("manifest: %w", err)
	}
	key := backupPrefix(b.TenantID, b.InstanceID, b.ID) + "manifest.json"
	obj, err := repo.Seal(ctx, e.blobs, key, dataKey, bytes.NewReader(raw))
	if err != nil {
		return b, fmt.Errorf("seal %s: %w", key, err)
	}
	b.Objects = append(b.Objects, obj)
	b.Copies = []string{copyPrimary}
	if e.secondary == nil {
		return b, nil
	}
	// A backup the primary repository holds is restorable: a failed second
	// copy is reported, not a reason to throw the backup away.
	if err := repo.Copy(ctx, e.blobs, e.secondary, b.Objects...); err != nil {
		if ctx.Err() != nil {
			return b, err
		}
		e.log.ErrorContext(ctx, "copy backup to the secondary repository", slog.String("tenant", b.TenantID),
			slog.String("instance", b.InstanceID), slog.String("backup", b.ID), slog.Any("err", err))
		e.deleteObjects(ctx, e.secondary, b.TenantID, b.InstanceID, b.ID, b.Objects)
		return b, nil
	}
	b.Copies = append(b.Copies, copySecondary)
	return b, nil
}

// complete records a completed backup and its event.
func (e *Engine) complete(ctx context.Context, b backup.Backup) {
	b.Status, b.FinishedAt = backup.StatusCompleted, e.now().UTC()
	b.StoredBytes = 0
	for _, o := range b.Objects {
		b.StoredBytes += o.Size
	}
	ev, err := outcomeEvent(events.TypeBackupCompleted, b)
	if err == nil {
		err = e.st.UpdateBackup(ctx, b, ev)
	}
	if err != nil {
		// The objects stay: the row says running, and the next active
		// engine cleans it up as interrupted.
		e.log.ErrorContext(ctx, "record completed backup", slog.String("tenant", b.TenantID),
			slog.String("instance", b.InstanceID), slog.String("backup", b.ID), slog.Any("err", err))
		return
	}
	e.m.backups.WithLabelValues(string(b.Engine), string(backup.StatusCompleted)).Inc()
	e.m.bytes.Add(float64(b.StoredBytes))
	e.m.lastSuccess.WithLabelValues(b.InstanceID).Set(float64(b.FinishedAt.Unix()))
	e.log.InfoContext(ctx, "backup completed", slog.String("tenant", b.TenantID), slog.String("instance", b.InstanceID),
		slog.String("backup", b.ID), slog.Int64("data_bytes", b.DataBytes), slog.Int64("stored_bytes", b.StoredBytes),
		slog.String("gtid", b.GTID), slog.Bool("verified", b.Verified))
	e.fullDone(b.InstanceID)
}

// fail removes a backup's objects and records it failed with reason.
func (e *Engine) fail(ctx context.Context, b backup.Backup, reason string) {
	e.deleteObjects(ctx, e.blobs, b.TenantID, b.InstanceID, b.ID, b.Objects)
	if e.secondary != nil {
		e.deleteObjects(ctx, e.secondary, b.TenantID, b.InstanceID, b.ID, b.Objects)
	}
	b.Status, b.FinishedAt, b.Error = backup.StatusFailed, e.now().UTC(), reason
	b.Objects, b.Copies, b.StoredBytes, b.Verified, b.VerifiedAt = nil, nil, 0, false, time.Time{}
	ev, err := outcomeEvent(events.TypeBackupFailed, b)
	if err == nil {
		err = e.st.UpdateBackup(ctx, b, ev)
	}
	if err != nil {
		e.log.ErrorContext(ctx, "record failed backup", slog.String("tenant", b.TenantID),
			slog.String("instance", b.InstanceID), slog.String("backup", b.ID), slog.Any("err", err))
		return
	}
	e.m.backups.WithLabelValues(string(b.Engine), string(backup.StatusFailed)).Inc()
	e.log.ErrorContext(ctx, "backup failed", slog.String("tenant", b.TenantID), slog.String("instance", b.InstanceID),
		slog.String("backup", b.ID), slog.String("reason", reason))
}

// deleteObjects removes a backup's objects from one repository: those
// recorded and whatever else lies under its folder (a run that died
// recorded none).
func (e *Engine) deleteObjects(ctx context.Context, blobs repo.Blobs, tenant, instanceID, id string, objs []backup.Object) bool {
	ok := true
	// The objects a run writes, whether it recorded them or not: a run
	// killed mid-Put recorded none and its object is not listable yet,
	// but deleting its key removes what it half-wrote.
	prefix := backupPrefix(tenant, instanceID, id)
	keys := map[string]bool{prefix + "data": true, prefix + "manifest.json": true}
	for _, o := range objs {
		keys[o.Key] = true
	}
	listed, err := blobs.List(ctx, prefix)
	if err != nil {
		e.log.WarnContext(ctx, "list backup objects", slog.String("backup", id), slog.Any("err", err))
		ok = false
	}
	for _, k := range listed {
		keys[k] = true
	}
	for k := range keys {
		if err := blobs.Delete(ctx, k); err != nil {
			e.log.WarnContext(ctx, "delete backup object", slog.String("backup", id), slog.String("key", k), slog.Any("err", err))
			ok = false
		}
	}
	return ok
}

// cleanupInterrupted fails the backups a dead process left running.
func (e *Engine) cleanupInterrupted(ctx context.Context) error {
	left, err := e.st.RunningBackups(ctx)
	if err != nil {
		return fmt.Errorf("backups left running: %w", err)
	}
	for _, b := range left {
		e.fail(ctx, b, errInterrupted)
	}
	return nil
}

// outcomeEvent is backup.completed or backup.failed for b.
func outcomeEvent(typ string, b backup.Backup) (eventbus.Event, error) {
	ev, err := eventbus.NewEvent(typ, events.SourceBackup, b.InstanceID, events.BackupOutcome{
		BackupID: b.ID, TenantID: b.TenantID, InstanceID: b.InstanceID, Engine: string(b.Engine), Kind: string(b.Kind),
		Trigger: string(b.Trigger), StartedAt: b.StartedAt, FinishedAt: b.FinishedAt, DataBytes: b.DataBytes,
		StoredBytes: b.StoredBytes, GTID: b.GTID, Verified: b.Verified, Error: b.Error,
	})
	if err != nil {
		return eventbus.Event{}, err
	}
	ev.Tenant = b.TenantID
	return ev, nil
}
