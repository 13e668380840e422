// Package capture reads a MariaDB node's binlog from a GTID position and
// turns its row changes into Debezium-shaped Kafka messages, in commit
// order, in bounded batches that carry the checkpoint a stream may store
// once Kafka acknowledged them. It does not write to Kafka, store
// checkpoints, pick the node or reconnect: the pipeline does, from the
// errors Run returns.
//
// Choices and why:
//
//   - binlog_row_metadata=FULL. Every rows event comes with its own table
//     map; with FULL metadata that map carries the column names,
//     signedness, ENUM/SET members, charsets and primary key valid when
//     the row was written. Decoding with it (envelope.TableFromMap) makes
//     events before and after an ALTER TABLE decode with their own
//     columns without replaying DDL into a schema model, and makes a
//     restart from any GTID self-sufficient. A table map without names
//     (a source not on FULL) fails the stream: guessing names from the
//     current schema could silently shift values into the wrong columns.
//     DDL is still published on <prefix>.schema-changes and handed to
//     OnDDL, for the schema history consumers and operators read.
//
//   - source.row is the index of the row change within its transaction
//     (counted over all tables, captured or not, so it does not depend on
//     the stream's filter). A GTID names a transaction, not a row, and one
//     transaction can hold millions of rows split over many batches;
//     (source.gtid, source.row) names one change exactly, so a consumer
//     drops the duplicates at-least-once delivery produces after a crash
//     without keeping more than the last pair it applied.
//
//   - Checkpoints only at commits. A batch flushed because it reached
//     MaxBatch inside a transaction has no checkpoint: restarting in the
//     middle of a transaction is not possible from a GTID position, so the
//     whole transaction is replayed after a crash (duplicates, never a
//     gap). Transactions touching only excluded tables still move the
//     position; their checkpoint is handed on alone after 50 ms without
//     events, or with the next batch, so lag and binlog retention do not
//     depend on writes to captured tables.
//
//   - Values leave go-mysql as text (ParseTime=false, UseDecimal=false,
//     TIMESTAMP formatted in UTC), the same text a SELECT returns in a
//     session with time_zone='+00:00', so the snapshot and the binlog
//     publish identical JSON for the same stored value.
//
//   - A heartbeat every second and a 3 s read timeout: a dead or
//     partitioned source ends Run with a connection error within seconds,
//     and go-mysql's own retry is off so that the pipeline can choose a
//     surviving node. MySQL error 1236 (the source no longer has the
//     binlog for the position) is ErrPositionLost; an undecodable value
//     is a *PoisonError. Nothing is ever skipped, except (below) a sync
//     job's own transactions.
//
//   - Decoded mode (sync jobs) hands on RowChanges of SQL argument values
//     instead of Debezium JSON, so that an applier binds them and the
//     target stores exactly the source's value; an update of the primary
//     key stays one "u", as the applier needs the old key to find the row.
//
//   - SkipServerID drops whole transactions by the server id of their GTID
//     event, which a write keeps through replication (log_slave_updates):
//     a sync job writes its target with its own session server_id and so
//     never reads its own writes back (no ping-pong in a two-way job),
//     while another job capturing the same node still sees them.
package capture
