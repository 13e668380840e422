package cdcbench

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"

	"github.com/canopy-platform/canopy/services/cdc/internal/capture"
	"github.com/canopy-platform/canopy/services/cdc/internal/change"
	"github.com/canopy-platform/canopy/services/cdc/internal/gtidpos"
	"github.com/canopy-platform/canopy/services/cdc/internal/sink"
)

// Replica server ids of the benchmark's binlog readers; each reader gets
// its own (a server kills an older dump thread of the same id).
const (
	rawServerID     uint32 = 0x7cbe0000
	captureServerID uint32 = 0x7cbf0000
)

// rawParse reads the binlog after from with a bare go-mysql BinlogSyncer
// (MariaDB flavor, rows decoded, nothing else done with them) until the
// transaction at to committed, and returns the row changes it saw and how
// long that took from the connect on. This is the peer the capture's
// throughput is compared with.
func rawParse(ctx context.Context, src capture.Source, serverID uint32, from, to string) (rows int64, elapsed time.Duration, err error) {
	target, err := gtidpos.Parse(to)
	if err != nil {
		return 0, 0, err
	}
	gset, err := mysql.ParseMariadbGTIDSet(from)
	if err != nil {
		return 0, 0, fmt.Errorf("start position %q: %w", from, err)
	}
	host, portStr, err := net.SplitHostPort(src.Addr)
	if err != nil {
		return 0, 0, fmt.Errorf("source %q: %w", src.Addr, err)
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil {
		return 0, 0, fmt.Errorf("source %q: %w", src.Addr, err)
	}
	start := time.Now()
	syncer := replication.NewBinlogSyncer(replication.BinlogSyncerConfig{
		ServerID: serverID, Flavor: mysql.MariaDBFlavor, Host: host, Port: uint16(port),
		User: src.User, Password: src.Password, DisableRetrySync: true,
		Logger: slog.New(slog.DiscardHandler),
	})
	defer syncer.Close()
	st, err := syncer.StartSyncGTID(gset)
	if err != nil {
		return 0, 0, fmt.Errorf("start binlog sync at %s: %w", from, err)
	}
	cur := gtidpos.Position{}
	for {
		ev, err := st.GetEvent(ctx)
		if err != nil {
			return rows, 0, fmt.Errorf("binlog event after %d rows: %w", rows, err)
		}
		switch e := ev.Event.(type) {
		case *replication.MariadbGTIDEvent:
			cur[e.GTID.DomainID] = gtidpos.GTID{Server: e.GTID.ServerID, Seq: e.GTID.SequenceNumber}
		case *replication.RowsEvent:
			rows += int64(len(e.Rows))
		case *replication.XIDEvent:
			if cur.Covers(target, 0) {
				return rows, time.Since(start), nil
			}
		}
	}
}

// pump is the pipeline's data path without its bookkeeping: capture.Run into
// a bounded channel (4 batches, as the design has it) and sink.Write of every
// batch, synchronously, in order. onBatch (optional) sees each batch once
// Kafka acknowledged it and returns true to stop. pump returns the row
// changes acknowledged, and nil when onBatch stopped it; ctx.Err() when ctx
// ended; the capture's or sink's error otherwise. st also says how long
// sink.Write took in all: where the time went.
func pump(ctx context.Context, cfg capture.Config, snk *sink.Sink, onBatch func(change.Batch) bool) (st pumpStats, err error) {
	ctx, cancel := context.WithCancel(ctx)
	out := make(chan change.Batch, 4)
	capErr := make(chan error, 1)
	go func() { capErr <- capture.Run(ctx, cfg, out) }()
	// Stop capture and wait for it whatever the way out; it may be blocked
	// on a send, so keep draining.
	defer func() {
		cancel()
		for {
			select {
			case <-out:
			case <-capErr:
				return
			}
		}
	}()
	schemaTopic := cfg.Prefix + ".schema-changes"
	for {
		select {
		case <-ctx.Done():
			return st, ctx.Err()
		case err := <-capErr:
			// Put it back for the deferred wait.
			capErr <- err
			if ctx.Err() != nil {
				// Stopping: whatever capture said on the way out.
				return st, ctx.Err()
			}
			if err == nil {
				err = errors.New("returned nil")
			}
			return st, fmt.Errorf("capture stopped after %d rows: %w", st.rows, err)
		case bt := <-out:
			t0 := time.Now()
			if err := snk.Write(ctx, bt.Messages); err != nil {
				if ctx.Err() != nil {
					return st, ctx.Err()
				}
				return st, fmt.Errorf("sink write after %d rows: %w", st.rows, err)
			}
			st.write += time.Since(t0)
			st.batches++
			for _, m := range bt.Messages {
				if m.Value != nil && m.Topic != schemaTopic {
					st.rows++
				}
			}
			if onBatch != nil && onBatch(bt) {
				return st, nil
			}
		}
	}
}

// pumpStats is what a pump did.
type pumpStats struct {
	// rows counts the row changes acknowledged (not tombstones or DDL).
	rows, batches int64
	// write is the time spent in sink.Write.
	write time.Duration
}

// untilPosition is an onBatch that stops once a checkpoint reaches target;
// a checkpoint that does not parse stops with the error kept in *err.
func untilPosition(target gtidpos.Position, perr *error) func(change.Batch) bool {
	return func(bt change.Batch) bool {
		if bt.Checkpoint == nil {
			return false
		}
		p, err := gtidpos.Parse(bt.Checkpoint.GTID)
		if err != nil {
			*perr = fmt.Errorf("checkpoint: %w", err)
			return true
		}
		return p.Covers(target, 0)
	}
}

// captureConfig is a stream of the orders table under prefix.
func captureConfig(n *node, serverID uint32, prefix, start string) capture.Config {
	return capture.Config{
		Source: n.source(), ServerID: serverID, Prefix: prefix, Start: start, MaxBatch: 1000,
		Include: func(db, table string) bool { return db == benchDB && table == benchTable },
	}
}

// topicOf is the orders table's topic under prefix.
func topicOf(prefix string) string { return strings.Join([]string{prefix, benchDB, benchTable}, ".") }
