CREATE TABLE IF NOT EXISTS schema_history (
  id         BIGINT        NOT NULL AUTO_INCREMENT PRIMARY KEY,
  stream_id  VARCHAR(64)   NOT NULL,
  gtid       VARCHAR(2048) NOT NULL,
  db         VARCHAR(64)   NOT NULL,
  table_name VARCHAR(64)   NOT NULL,
  ddl        MEDIUMTEXT    NOT NULL,
  at         DATETIME(6)   NOT NULL,
  KEY schema_history_stream (stream_id, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
