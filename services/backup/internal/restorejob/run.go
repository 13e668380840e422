package restorejob

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/canopy-platform/canopy/services/backup/internal/aofarchive"
	"github.com/canopy-platform/canopy/services/backup/internal/backup"
	"github.com/canopy-platform/canopy/services/backup/internal/repo"
)

// Run works on queued jobs until ctx ends. Jobs a dead process left
// running start again from a clean staging directory.
func (r *Runner) Run(ctx context.Context) error {
	if err := r.recover(ctx); err != nil {
		if ctx.Err() != nil {
			return nil // stopped before it began
		}
		return err
	}
	jobs := make(chan backup.Restore)
	var wg sync.WaitGroup
	for range r.cfg.Workers {
		wg.Go(func() {
			for job := range jobs {
				r.execute(ctx, job)
				r.release(job.ID)
			}
		})
	}
	defer wg.Wait()
	defer close(jobs)
	tick := time.NewTicker(r.cfg.PollEvery)
	defer tick.Stop()
	for {
		r.dispatch(ctx, jobs)
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		case <-r.wake:
		}
	}
}

// recover puts jobs left running back in the queue, their staging dirs
// wiped: nothing a dead process half-wrote is ever a seed.
func (r *Runner) recover(ctx context.Context) error {
	active, err := r.st.ActiveRestores(ctx)
	if err != nil {
		return fmt.Errorf("restorejob: active restores: %w", err)
	}
	for _, job := range active {
		if job.Status != backup.RestoreRunning {
			continue
		}
		if err := os.RemoveAll(r.jobDir(job.ID)); err != nil {
			return fmt.Errorf("restorejob: wipe staging of %s: %w", job.ID, err)
		}
		job.Status, job.Phase, job.Seed, job.UpdatedAt = backup.RestorePending, "", "", r.now().UTC()
		if err := r.st.UpdateRestore(ctx, job); err != nil {
			return fmt.Errorf("restorejob: requeue %s: %w", job.ID, err)
		}
		r.log.WarnContext(ctx, "restore interrupted by a restart; starting it again", "restore", job.ID, "tenant", job.TenantID,
			"instance", job.SourceInstanceID, "target", job.TargetInstanceID)
	}
	return nil
}

// dispatch hands pending jobs to idle workers and expires old seeds.
func (r *Runner) dispatch(ctx context.Context, jobs chan<- backup.Restore) {
	active, err := r.st.ActiveRestores(ctx)
	if err != nil {
		if ctx.Err() == nil {
			r.log.ErrorContext(ctx, "list restore jobs", "err", err)
		}
		return
	}
	for _, job := range active {
		switch job.Status {
		case backup.RestoreReady:
			if r.now().Sub(job.UpdatedAt) > r.cfg.SeedTTL {
				r.expire(ctx, job)
			}
		case backup.RestorePending, backup.RestoreRunning:
			// A running job no worker of ours holds lost its worker to
			// an error that could not be recorded: it starts again.
			if !r.claim(job.ID) {
				continue
			}
			select {
			case jobs <- job:
			default:
				// Every worker is busy: the next look hands it out.
				r.release(job.ID)
			}
		}
	}
}

func (r *Runner) claim(id string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.busy[id] {
		return false
	}
	r.busy[id] = true
	return true
}

func (r *Runner) release(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.busy, id)
}

// expire removes a seed nobody took within SeedTTL.
func (r *Runner) expire(ctx context.Context, job backup.Restore) {
	if err := os.RemoveAll(r.jobDir(job.ID)); err != nil {
		r.log.ErrorContext(ctx, "remove expired seed", "restore", job.ID, "err", err)
		return
	}
	job.Status, job.Seed, job.Error, job.UpdatedAt = backup.RestoreFailed, "", "seed expired", r.now().UTC()
	if err := r.st.UpdateRestore(ctx, job); err != nil {
		r.log.ErrorContext(ctx, "mark seed expired", "restore", job.ID, "err", err)
		return
	}
	r.log.WarnContext(ctx, "restore seed expired untaken", "restore", job.ID, "tenant", job.TenantID, "target", job.TargetInstanceID)
}

// execute runs one job to ready or failed. A job cut short by shutdown
// stays running (its staging dir removed) and starts again at the next Run.
func (r *Runner) execute(ctx context.Context, job backup.Restore) {
	// The dispatcher's list may predate a worker finishing the job: only
	// the stored state, read under the claim, says it still needs doing.
	fresh, err := r.st.GetRestore(ctx, job.ID)
	if err != nil {
		if ctx.Err() == nil {
			r.log.ErrorContext(ctx, "read restore job", "restore", job.ID, "err", err)
		}
		return
	}
	job = fresh
	if job.Status != backup.RestorePending && job.Status != backup.RestoreRunning {
		return
	}
	log := r.log.With("restore", job.ID, "tenant", job.TenantID, "instance", job.SourceInstanceID, "target", job.TargetInstanceID)
	dir := r.jobDir(job.ID)
	if err := os.RemoveAll(dir); err != nil {
		r.fail(ctx, job, fmt.Errorf("clean staging dir: %w", err))
		return
	}
	log.InfoContext(ctx, "restore started", "backup", job.Plan.Backup.ID, "segments", len(job.Plan.Segments))
	seed, reached, err := r.build(ctx, &job, dir)
	if err != nil {
		if rmErr := os.RemoveAll(dir); rmErr != nil {
			log.ErrorContext(ctx, "remove staging dir of a failed restore", "err", rmErr)
		}
		if ctx.Err() != nil {
			log.WarnContext(ctx, "restore interrupted by shutdown; it starts again at the next start", "err", err)
			return
		}
		if errors.Is(err, errStore) {
			// Not the job's fault: it starts again once the store answers.
			log.WarnContext(ctx, "restore interrupted by a store error; it starts again", "err", err)
			return
		}
		log.ErrorContext(ctx, "restore failed", "phase", job.Phase, "err", err)
		r.fail(ctx, job, err)
		return
	}
	job.Status, job.Seed, job.ReachedGTID, job.UpdatedAt = backup.RestoreReady, seed, reached, r.now().UTC()
	if err := r.st.UpdateRestore(ctx, job); err != nil {
		log.ErrorContext(ctx, "record ready restore; it starts again", "err", err)
		_ = os.RemoveAll(dir)
		return
	}
	log.InfoContext(ctx, "restore ready", "seed", seed, "reached_gtid", reached)
}

// errStore marks a failure to read or write the catalog: the job is
// tried again rather than failed.
var errStore = errors.New("restore catalog unavailable")

// fail records a failed job; its staging dir is already gone.
func (r *Runner) fail(ctx context.Context, job backup.Restore, cause error) {
	job.Status, job.Seed, job.Error, job.UpdatedAt = backup.RestoreFailed, "", cause.Error(), r.now().UTC()
	if err := r.st.UpdateRestore(ctx, job); err != nil {
		r.log.ErrorContext(ctx, "record failed restore", "restore", job.ID, "err", err)
	}
}

// phase records the job's progress.
func (r *Runner) phase(ctx context.Context, job *backup.Restore, phase string) error {
	job.Status, job.Phase, job.UpdatedAt = backup.RestoreRunning, phase, r.now().UTC()
	if err := r.st.UpdateRestore(ctx, *job); err != nil {
		return fmt.Errorf("%w: record phase %s: %w", errStore, phase, err)
	}
	return nil
}

// build makes the seed in dir and returns it with the GTID reached.
func (r *Runner) build(ctx context.Context, job *backup.Restore, dir string) (seed, reached string, err error) {
	if err := r.phase(ctx, job, backup.PhaseFetching); err != nil {
		return "", "", err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", "", fmt.Errorf("create staging dir: %w", err)
	}
	if job.Engine == backup.EngineRedis && job.Plan.Backup.ID == "" {
		return r.buildAOF(ctx, job, dir)
	}
	b, err := r.st.GetBackup(ctx, job.TenantID, job.SourceInstanceID, job.Plan.Backup.ID)
	if errors.Is(err, backup.ErrNotFound) {
		return "", "", fmt.Errorf("backup %s: %w: no longer in the catalog", job.Plan.Backup.ID, err)
	}
	if err != nil {
		return "", "", fmt.Errorf("%w: backup %s: %w", errStore, job.Plan.Backup.ID, err)
	}
	if b.Status != backup.StatusCompleted {
		return "", "", fmt.Errorf("backup %s is %s, no longer restorable", b.ID, b.Status)
	}
	obj, err := dataObject(b)
	if err != nil {
		return "", "", err
	}
	key, err := repo.UnwrapKey(r.box, b.WrappedKey, b.ID)
	if err != nil {
		return "", "", fmt.Errorf("backup %s: unwrap data key: %w", b.ID, err)
	}
	if job.Engine == backup.EngineRedis {
		if err := r.fetch(ctx, obj, key, filepath.Join(dir, "dump.rdb")); err != nil {
			return "", "", fmt.Errorf("backup %s: %w", b.ID, err)
		}
		return dir, "", nil
	}
	// Segments first: a missing or corrupt one fails the job before the
	// long prepare.
	files, err := r.fetchSegments(ctx, job, filepath.Join(dir, "binlog"))
	if err != nil {
		return "", "", err
	}
	if err := r.phase(ctx, job, backup.PhasePreparing); err != nil {
		return "", "", err
	}
	data := filepath.Join(dir, "data")
	rc, err := repo.Open(ctx, r.blobs, obj, key)
	if err != nil {
		return "", "", fmt.Errorf("backup %s object %s: %w", b.ID, obj.Key, err)
	}
	src := &watchedReader{r: rc}
	prepared, err := r.phys.Prepare(ctx, src, data)
	rc.Close()
	if src.err != nil {
		// The object's own fault (ErrCorrupt, ErrMissing) says more than
		// the tool's complaint about a broken stream.
		return "", "", fmt.Errorf("backup %s object %s: %w", b.ID, obj.Key, src.err)
	}
	if err != nil {
		return "", "", fmt.Errorf("prepare backup %s: %w", b.ID, err)
	}
	start := b.GTID
	if start == "" {
		start = prepared
	}
	if err := r.phase(ctx, job, backup.PhaseReplaying); err != nil {
		return "", "", err
	}
	reached, err = r.phys.Replay(ctx, data, files, start, job.Plan.StopBefore, job.Plan.StopGTID)
	if err != nil {
		return "", "", fmt.Errorf("replay %d segments onto backup %s: %w", len(files), b.ID, err)
	}
	if err := os.RemoveAll(filepath.Join(dir, "binlog")); err != nil {
		return "", "", fmt.Errorf("remove replayed segments: %w", err)
	}
	return data, reached, nil
}

// buildAOF makes a Redis seed from an AOF chain: its base and the incr
// pieces up to the target, joined and cut at the target's second.
func (r *Runner) buildAOF(ctx context.Context, job *backup.Restore, dir string) (seed, reached string, err error) {
	if len(job.Plan.Segments) == 0 {
		return "", "", fmt.Errorf("%w: an aof restore plan without a base segment", backup.ErrInvalid)
	}
	base, err := backup.ParseAOFPos(job.Plan.Segments[0].StartPos)
	if err != nil || base.File != "" {
		return "", "", fmt.Errorf("%w: the plan's first segment is not an aof base", backup.ErrInvalid)
	}
	files, err := r.fetchSegments(ctx, job, filepath.Join(dir, "pieces"))
	if err != nil {
		return "", "", err
	}
	if err := r.phase(ctx, job, backup.PhaseReplaying); err != nil {
		return "", "", err
	}
	if err := aofarchive.BuildSeed(ctx, r.cfg.RedisCheckAOF, dir, files[0], base.Base, files[1:], job.Plan.StopBefore); err != nil {
		return "", "", fmt.Errorf("build aof seed from %d segments: %w", len(files), err)
	}
	if err := os.RemoveAll(filepath.Join(dir, "pieces")); err != nil {
		return "", "", fmt.Errorf("remove joined segments: %w", err)
	}
	return dir, "", nil
}

// dataObject is the backup's data object (key ending in /data; the first
// object for backups that name it otherwise).
func dataObject(b backup.Backup) (backup.Object, error) {
	for _, o := range b.Objects {
		if strings.HasSuffix(o.Key, "/data") {
			return o, nil
		}
	}
	if len(b.Objects) == 0 {
		return backup.Object{}, fmt.Errorf("backup %s lists no objects", b.ID)
	}
	return b.Objects[0], nil
}

// fetchSegments writes the plan's segments, read back from the store for
// their keys, into dir as <seq> files, in order.
func (r *Runner) fetchSegments(ctx context.Context, job *backup.Restore, dir string) ([]string, error) {
	planned := job.Plan.Segments
	if len(planned) == 0 {
		return nil, nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create binlog dir: %w", err)
	}
	stored, err := r.st.Segments(ctx, job.SourceInstanceID, planned[0].Seq)
	if err != nil {
		return nil, fmt.Errorf("%w: segments of %s: %w", errStore, job.SourceInstanceID, err)
	}
	bySeq := make(map[int64]backup.Segment, len(stored))
	for _, s := range stored {
		bySeq[s.Seq] = s
	}
	files := make([]string, 0, len(planned))
	for _, p := range planned {
		seg, ok := bySeq[p.Seq]
		if !ok || seg.Object.Key != p.Object.Key {
			return nil, fmt.Errorf("segment %d (%s): %w: no longer in the archive", p.Seq, p.Object.Key, repo.ErrMissing)
		}
		key, err := repo.UnwrapKey(r.box, seg.WrappedKey, seg.Object.Key)
		if err != nil {
			return nil, fmt.Errorf("segment %d (%s): unwrap data key: %w", seg.Seq, seg.Object.Key, err)
		}
		file := filepath.Join(dir, fmt.Sprintf("%012d", seg.Seq))
		if err := r.fetch(ctx, seg.Object, key, file); err != nil {
			return nil, fmt.Errorf("segment %d: %w", seg.Seq, err)
		}
		files = append(files, file)
	}
	return files, nil
}

// fetch writes an object's plaintext to file, complete or not at all.
func (r *Runner) fetch(ctx context.Context, obj backup.Object, key []byte, file string) error {
	rc, err := repo.Open(ctx, r.blobs, obj, key)
	if err != nil {
		return fmt.Errorf("object %s: %w", obj.Key, err)
	}
	defer rc.Close()
	part := file + ".part"
	f, err := os.OpenFile(part, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("object %s: %w", obj.Key, err)
	}
	_, err = io.Copy(f, rc)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(part)
		return fmt.Errorf("object %s: %w", obj.Key, err)
	}
	if err := os.Rename(part, file); err != nil {
		return fmt.Errorf("object %s: %w", obj.Key, err)
	}
	return nil
}

// watchedReader keeps the first error its reader returned, so a failure
// of the object (not of the tool reading it) can be named.
type watchedReader struct {
	r   io.Reader
	err error
}

func (w *watchedReader) Read(p []byte) (int, error) {
	n, err := w.r.Read(p)
	if err != nil && !errors.Is(err, io.EOF) && w.err == nil {
		w.err = err
	}
	return n, err
}
