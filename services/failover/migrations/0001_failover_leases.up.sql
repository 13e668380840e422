CREATE TABLE IF NOT EXISTS failover_leases (
  instance_id VARCHAR(64)  NOT NULL PRIMARY KEY,
  holder      VARCHAR(200) NOT NULL,
  token       BIGINT       NOT NULL,
  expires_at  DATETIME(6)  NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
