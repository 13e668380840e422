CREATE TABLE IF NOT EXISTS drills (
  id           VARCHAR(26)  NOT NULL PRIMARY KEY,
  instance_id  VARCHAR(64)  NOT NULL,
  tenant_id    VARCHAR(64)  NOT NULL,
  kind         VARCHAR(32)  NOT NULL,
  state        VARCHAR(16)  NOT NULL,
  recovery_id  VARCHAR(26)  NOT NULL DEFAULT '',
  reason       TEXT         NOT NULL,
  requested_by VARCHAR(200) NOT NULL DEFAULT '',
  requested_at DATETIME(6)  NOT NULL,
  finished_at  DATETIME(6)  NULL,
  KEY drills_tenant (tenant_id, id),
  KEY drills_instance (instance_id, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
