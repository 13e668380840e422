CREATE TABLE IF NOT EXISTS idempotency_keys (
  subject      VARCHAR(64)  NOT NULL,
  idem_key     VARCHAR(255) NOT NULL,
  request_hash BINARY(32)   NOT NULL,
  status       SMALLINT     NOT NULL DEFAULT 0,
  content_type VARCHAR(100) NOT NULL DEFAULT '',
  body         MEDIUMBLOB   NULL,
  created_at   DATETIME(6)  NOT NULL,
  PRIMARY KEY (subject, idem_key),
  KEY idempotency_created (created_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
