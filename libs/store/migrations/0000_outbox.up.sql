-- The transactional outbox (libs/store: Tx.Emit writes it, the Relay reads
-- it). id orders the rows (per-key order is id order); the (sent_at, id)
-- index serves both the relay's scan of unsent rows (sent_at IS NULL ORDER
-- BY id) and the purge of old sent ones. IF NOT EXISTS: databases created
-- before this migration already have the table (store.Open made it).
CREATE TABLE IF NOT EXISTS outbox (
	id         BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
	topic      VARCHAR(249)    NOT NULL,
	msg_key    VARCHAR(255)    NOT NULL DEFAULT '',
	event_id   VARCHAR(255)    NOT NULL,
	headers    JSON            NOT NULL,
	payload    LONGBLOB        NULL,
	created_at DATETIME(6)     NOT NULL,
	sent_at    DATETIME(6)     NULL,
	KEY outbox_sent_id (sent_at, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4
