CREATE TABLE IF NOT EXISTS drill_schedules (
  instance_id VARCHAR(64) NOT NULL PRIMARY KEY,
  tenant_id   VARCHAR(64) NOT NULL,
  cadence     VARCHAR(16) NOT NULL,
  drill_kind  VARCHAR(32) NOT NULL,
  next_at     DATETIME(6) NOT NULL,
  updated_at  DATETIME(6) NOT NULL,
  KEY drill_schedules_next (next_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
