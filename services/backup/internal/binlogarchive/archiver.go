// Package binlogarchive archives a MariaDB primary's binary log
// continuously: it reads the log as a replica does (COM_BINLOG_DUMP with
// GTID, go-mysql's BinlogSyncer) and cuts it into segments of whole
// transactions, each a complete binlog file that mariadb-binlog reads,
// flushed every second or so, so that the archive lags the primary by
// seconds. After an error it asks where the primary is again and resumes
// at the last committed segment's GTID position: a failover's new primary
// continues the archive without a gap.
//
// It does not store segments (the Sink does) nor decide where the primary
// is (Locate does).
package binlogarchive

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/go-mysql-org/go-mysql/client"
	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"

	"github.com/canopy-platform/canopy/libs/retry"
)

// Defaults of Config.
const (
	DefaultFlushEvery = time.Second
	DefaultMaxBytes   = 16 << 20
	DefaultMinBackoff = 200 * time.Millisecond
	DefaultMaxBackoff = 5 * time.Second
)

const (
	// The primary sends a heartbeat every second when idle, so three
	// silent seconds mean the connection is gone.
	heartbeat   = time.Second
	readTimeout = 3 * time.Second
	// errCodeFatalReadingBinlog is ER_MASTER_FATAL_ERROR_READING_BINLOG,
	// what MariaDB answers a dump request it cannot serve.
	errCodeFatalReadingBinlog = 1236
)

// Source is where to read the binary log from.
type Source struct {
	NodeID   string
	Address  string
	User     string
	Password string
}

// Segment is one cut of the log, ready to store.
type Segment struct {
	// Data is a binlog file: magic, format description, whole transactions.
	Data         []byte
	StartPos     string
	EndPos       string
	FirstAt      time.Time
	LastAt       time.Time
	Transactions int
	SourceNode   string
}

// Config tunes an archiver.
type Config struct {
	// ServerID is the replica server id the archiver presents (unique per
	// archiver among the primary's replicas; 0 picks a random one above
	// 2^30, out of the way of Canopy's node ids).
	ServerID uint32
	// FlushEvery cuts a segment once its first transaction is this old
	// (default 1s); MaxBytes once it is this large (default 16 MiB).
	FlushEvery time.Duration
	MaxBytes   int
	// Backoff bounds reconnect waits (default 200ms .. 5s).
	MinBackoff, MaxBackoff time.Duration
	Log                    *slog.Logger
}

// Archiver archives one instance's binary log.
type Archiver struct {
	cfg Config

	mu    sync.Mutex
	stats Stats
}

// New returns an archiver; zero fields of cfg take their defaults.
func New(cfg Config) *Archiver {
	if cfg.ServerID == 0 {
		cfg.ServerID = 1<<30 + rand.Uint32N(1<<30)
	}
	if cfg.FlushEvery <= 0 {
		cfg.FlushEvery = DefaultFlushEvery
	}
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = DefaultMaxBytes
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = DefaultMinBackoff
	}
	if cfg.MaxBackoff < cfg.MinBackoff {
		cfg.MaxBackoff = max(DefaultMaxBackoff, cfg.MinBackoff)
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	return &Archiver{cfg: cfg}
}

// Locate returns the instance's current primary; the archiver calls it
// before every connection.
type Locate func(ctx context.Context) (Source, error)

// Sink stores a segment; once it returns nil the segment is committed and
// the next one starts at its EndPos. An error is retried with the same
// segment.
type Sink func(ctx context.Context, seg Segment) error

// Stats is an archiver's progress, for the lag metric.
type Stats struct {
	// Committed is the EndPos of the last committed segment.
	Committed string
	// CommittedAt is the binlog time of its last transaction.
	CommittedAt time.Time
	// PendingSince is the binlog time of the oldest transaction read but
	// not committed yet (zero: none).
	PendingSince time.Time
	Connected    bool
}

// Stats reports progress; safe for concurrent use.
func (a *Archiver) Stats() Stats {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.stats
}

func (a *Archiver) update(fn func(s *Stats)) {
	a.mu.Lock()
	fn(&a.stats)
	a.mu.Unlock()
}

// ErrGap is returned when the primary no longer has the binlogs after the
// archive's position.
var ErrGap = errGap{}

type errGap struct{}

func (errGap) Error() string {
	return "binlog archive gap: the primary purged binlogs after the archived position"
}

// Run archives from after start (a GTID position; "": the oldest binlog the
// primary has) until ctx ends, returning nil then. Errors from locate, the
// connection or a failed sink are retried with backoff; an unrecoverable
// one (the primary purged binlogs the archive needs: a gap) is returned.
func (a *Archiver) Run(ctx context.Context, locate Locate, start string, sink Sink) error {
	committed, err := parsePosition(start)
	if err != nil {
		return fmt.Errorf("archive start position: %w", err)
	}
	a.update(func(s *Stats) { *s = Stats{Committed: committed.String()} })
	bo := a.policy().NewBackOff()
	for {
		err := a.session(ctx, locate, &committed, sink, bo)
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, ErrGap) {
			return err
		}
		wait := bo.NextBackOff()
		a.cfg.Log.Warn("binlog archive interrupted, reconnecting", "committed", committed.String(), "retry_in", wait, "err", err)
		if !sleep(ctx, wait) {
			return nil
		}
	}
}

// session reads from the located primary after *committed until an error,
// cutting and sinking segments; *committed moves with each stored one.
// Whatever was read but not stored is dropped: the next session reads it
// again, maybe from another primary.
func (a *Archiver) session(ctx context.Context, locate Locate, committed *position, sink Sink, bo backoff.BackOff) error {
	src, err := locate(ctx)
	if err != nil {
		return fmt.Errorf("locate primary: %w", err)
	}
	host, portStr, err := net.SplitHostPort(src.Address)
	if err != nil {
		return fmt.Errorf("primary %s address %q: %w", src.NodeID, src.Address, err)
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil {
		return fmt.Errorf("primary %s address %q: %w", src.NodeID, src.Address, err)
	}
	if len(*committed) == 0 {
		// MariaDB reads an empty position as the very first transaction
		// and fails when that binlog is gone; the archive starts at the
		// oldest binlog the primary has instead.
		oldest, err := oldestPosition(ctx, src)
		if err != nil {
			return err
		}
		*committed = oldest
	}
	startAt := committed.String()
	gset, err := mysql.ParseMariadbGTIDSet(startAt)
	if err != nil {
		return fmt.Errorf("position %q: %w", startAt, err)
	}
	syncer := replication.NewBinlogSyncer(replication.BinlogSyncerConfig{
		ServerID: a.cfg.ServerID, Flavor: mysql.MariaDBFlavor,
		Host: host, Port: uint16(port), User: src.User, Password: src.Password,
		HeartbeatPeriod: heartbeat, ReadTimeout: readTimeout,
		// Reconnecting is ours: the primary may have moved.
		DisableRetrySync: true, DiscardGTIDSet: true,
		// Only the raw bytes are archived: skip decoding rows.
		RowsEventDecodeFunc: func(*replication.RowsEvent, []byte) error { return nil },
		Logger:              slog.New(quiet{a.cfg.Log.Handler()}).With("component", "go-mysql"),
	})
	defer syncer.Close()
	streamer, err := syncer.StartSyncGTID(gset)
	if err != nil {
		return classify(fmt.Errorf("start binlog dump from %s (%s) after %q: %w", src.NodeID, src.Address, startAt, err))
	}
	a.update(func(s *Stats) { s.Connected = true })
	defer a.update(func(s *Stats) { s.Connected = false; s.PendingSince = time.Time{} })
	a.cfg.Log.Info("binlog archive connected", "node", src.NodeID, "address", src.Address, "after", startAt)

	b := newBuilder(*committed)
	for {
		ev, err := a.next(ctx, streamer, b)
		if err != nil {
			if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
				if err := a.cut(ctx, b, src, committed, sink); err != nil {
					return err
				}
				continue
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return classify(fmt.Errorf("binlog from %s (%s) after %q: %w", src.NodeID, src.Address, b.end.String(), err))
		}
		if b.formatChanges(ev) {
			if err := a.cut(ctx, b, src, committed, sink); err != nil {
				return err
			}
		}
		done, err := b.add(ev)
		if err != nil {
			return fmt.Errorf("binlog from %s (%s) after %q: %w", src.NodeID, src.Address, b.end.String(), err)
		}
		if done {
			bo.Reset()
		}
		if since := b.pendingSince(); !since.IsZero() {
			a.update(func(s *Stats) {
				if s.PendingSince.IsZero() {
					s.PendingSince = since
				}
			})
		}
		if b.txns > 0 && (b.size() >= a.cfg.MaxBytes || time.Since(b.oldest) >= a.cfg.FlushEvery) {
			if err := a.cut(ctx, b, src, committed, sink); err != nil {
				return err
			}
		}
	}
}

// next waits for the next event, at most until the pending segment is due.
func (a *Archiver) next(ctx context.Context, s *replication.BinlogStreamer, b *builder) (*replication.BinlogEvent, error) {
	if b.txns == 0 {
		return s.GetEvent(ctx)
	}
	wctx, cancel := context.WithDeadline(ctx, b.oldest.Add(a.cfg.FlushEvery))
	defer cancel()
	return s.GetEvent(wctx)
}

// cut hands the pending transactions to the sink, retrying until it takes
// them or ctx ends, and starts the next segment at their end.
func (a *Archiver) cut(ctx context.Context, b *builder, src Source, committed *position, sink Sink) error {
	seg := b.segment(src.NodeID)
	err := retry.Do(ctx, a.policy(), func(ctx context.Context) error {
		err := sink(ctx, seg)
		if err != nil && ctx.Err() == nil {
			a.cfg.Log.Warn("store binlog segment failed, retrying", "start", seg.StartPos, "end", seg.EndPos, "err", err)
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("store binlog segment %s..%s: %w", seg.StartPos, seg.EndPos, err)
	}
	*committed = b.end.clone()
	b.restart()
	since := b.pendingSince()
	a.update(func(s *Stats) {
		s.Committed, s.CommittedAt, s.PendingSince = seg.EndPos, seg.LastAt, since
	})
	return nil
}

// oldestPosition is the GTID position at the start of the primary's
// oldest binlog file.
func oldestPosition(ctx context.Context, src Source) (position, error) {
	conn, err := client.ConnectWithContext(ctx, src.Address, src.User, src.Password, "", 5*time.Second)
	if err != nil {
		return nil, fmt.Errorf("connect to primary %s (%s): %w", src.NodeID, src.Address, err)
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		return nil, fmt.Errorf("primary %s (%s): %w", src.NodeID, src.Address, err)
	}
	logs, err := conn.Execute("SHOW BINARY LOGS")
	if err != nil {
		return nil, fmt.Errorf("binlogs of %s (%s): %w", src.NodeID, src.Address, err)
	}
	if logs.RowNumber() == 0 {
		return position{}, nil
	}
	file, err := logs.GetString(0, 0)
	if err != nil {
		return nil, fmt.Errorf("binlogs of %s (%s): %w", src.NodeID, src.Address, err)
	}
	res, err := conn.Execute("SELECT BINLOG_GTID_POS(?, 4)", file)
	if err != nil {
		return nil, fmt.Errorf("GTID position of %s on %s (%s): %w", file, src.NodeID, src.Address, err)
	}
	s, err := res.GetString(0, 0)
	if err != nil {
		return nil, fmt.Errorf("GTID position of %s on %s (%s): %w", file, src.NodeID, src.Address, err)
	}
	p, err := parsePosition(s)
	if err != nil {
		return nil, fmt.Errorf("GTID position of %s on %s (%s): %w", file, src.NodeID, src.Address, err)
	}
	return p, nil
}

// classify turns the primary's "cannot serve that position" into ErrGap
// when the reason is purged binlogs. Other 1236 answers (a position the
// node has not reached: a lagging replica that Locate named) may heal, so
// they are retried.
func classify(err error) error {
	var me *mysql.MyError
	if errors.As(err, &me) && me.Code == errCodeFatalReadingBinlog {
		msg := strings.ToLower(me.Message)
		if strings.Contains(msg, "purged") || strings.Contains(msg, "could not find gtid state") {
			return fmt.Errorf("%w: %w", ErrGap, err)
		}
	}
	return err
}

func (a *Archiver) policy() retry.Policy {
	return retry.Policy{Initial: a.cfg.MinBackoff, Max: a.cfg.MaxBackoff}
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
