// Package snapshot reads the initial, consistent copy of a stream's tables
// (Debezium's snapshot.mode=initial) and emits it as op "r" change events,
// chunk by chunk, with a checkpoint after each chunk so that a crash
// mid-snapshot resumes where it stopped. It is not the binlog reader
// (package capture streams from the GTID position a snapshot returns) and it
// does not write to Kafka (the sink does, from the batches sent on out).
//
// # Consistency without a global read lock
//
// Run opens one REPEATABLE READ transaction with START TRANSACTION WITH
// CONSISTENT SNAPSHOT and reads Binlog_snapshot_file and
// Binlog_snapshot_position from SHOW STATUS: MariaDB guarantees that this
// binlog position is exactly the point of the transaction's snapshot (every
// transaction committed before it is visible, none after), see
// https://mariadb.com/kb/en/enhancements-for-start-transaction-with-consistent-snapshot/
// ("this makes it possible to obtain a consistent snapshot ... with the
// corresponding binlog position, without FLUSH TABLES WITH READ LOCK").
// SELECT BINLOG_GTID_POS(file, pos) turns that position into a GTID
// position G. All chunks are read inside that one transaction, so the
// snapshot is the state of the tables at G, and streaming from G afterwards
// misses nothing and doubles nothing at the hand-over. No RELOAD privilege
// and no lock on the source are needed: SELECT, REPLICATION SLAVE and
// BINLOG MONITOR suffice (the tests run with exactly those).
//
// # Chunks and checkpoints
//
// Tables are read in name order, each by keyset pagination on its primary
// key (WHERE key > last key ORDER BY key LIMIT ChunkSize): every chunk is an
// index range scan however far into the table, and its last key is the
// resume point. Each chunk is one change.Batch whose Checkpoint carries G and
// the Progress after the chunk (JSON). A table without a primary key cannot
// be paginated or resumed inside: it is read in one pass, sent in batches of
// ChunkSize with no checkpoint but the last (a crash re-reads it whole), and
// its events have a null key, as Debezium publishes such tables.
//
// # Resuming
//
// After a crash the caller passes the last stored Progress. Run opens a new
// consistent snapshot at G2 (later than G), skips the finished tables and
// continues the partial one after its last key; the returned Progress keeps
// the FIRST position G, and streaming starts from G. Rows changed between G
// and G2 were read at their G2 state by the resumed chunks (or at their G
// state by the chunks before the crash), and the binlog from G replays every
// change made after G, after the snapshot events: the last event per key is
// the row's current state, so the compacted (per key) view is exact. What
// it costs is duplicates (a row may be read at G2 and then see its older
// changes replayed), which at-least-once delivery allows anyway.
//
// Each resume also moves source.row into a fresh range (Progress.Attempt ×
// 10^12 + the row's index), because consumers drop duplicates by
// (source.gtid, source.row) and all attempts share G: a batch written to
// Kafka before the crash but not checkpointed used the same indexes for
// rows that the new snapshot may number differently.
//
// Decoded mode (a sync job's initial load) hands on each row as the text
// SELECT returned, in a RowChange of op "r", instead of Debezium JSON: bound
// as arguments in a '+00:00' session that text stores the very value read,
// with no round trip through a JSON mapping. The schema _canopy_sync (sync
// jobs' watermarks on a target) is never read, like the system schemas.
package snapshot
