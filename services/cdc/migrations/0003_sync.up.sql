CREATE TABLE IF NOT EXISTS sync_jobs (
  id              VARCHAR(64)  NOT NULL PRIMARY KEY,
  tenant_id       VARCHAR(64)  NOT NULL,
  source_instance VARCHAR(64)  NOT NULL,
  target_instance VARCHAR(64)  NOT NULL,
  spec            JSON         NOT NULL,
  state           VARCHAR(16)  NOT NULL,
  server_id       INT UNSIGNED NOT NULL,
  status          JSON         NOT NULL,
  last_error      TEXT         NOT NULL,
  created_at      DATETIME(6)  NOT NULL,
  updated_at      DATETIME(6)  NOT NULL,
  UNIQUE KEY sync_jobs_server_id (server_id),
  KEY sync_jobs_tenant (tenant_id, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE TABLE IF NOT EXISTS sync_conflicts (
  id            VARCHAR(64)  NOT NULL PRIMARY KEY,
  job_id        VARCHAR(64)  NOT NULL,
  tenant_id     VARCHAR(64)  NOT NULL,
  from_instance VARCHAR(64)  NOT NULL,
  to_instance   VARCHAR(64)  NOT NULL,
  db            VARCHAR(64)  NOT NULL,
  table_name    VARCHAR(64)  NOT NULL,
  kind          VARCHAR(16)  NOT NULL,
  row_key       JSON         NOT NULL,
  change_data   JSON         NOT NULL,
  target_row    JSON         NULL,
  gtid          VARCHAR(128) NOT NULL,
  row_idx       INT          NOT NULL,
  strategy      VARCHAR(16)  NOT NULL,
  resolution    VARCHAR(16)  NOT NULL,
  at            DATETIME(6)  NOT NULL,
  resolved_at   DATETIME(6)  NULL,
  UNIQUE KEY sync_conflicts_change (job_id, from_instance, gtid, row_idx),
  KEY sync_conflicts_job (job_id, id),
  KEY sync_conflicts_pending (job_id, resolution, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE TABLE IF NOT EXISTS sync_verifications (
  id          VARCHAR(64) NOT NULL PRIMARY KEY,
  job_id      VARCHAR(64) NOT NULL,
  tenant_id   VARCHAR(64) NOT NULL,
  repair      BOOLEAN     NOT NULL,
  state       VARCHAR(16) NOT NULL,
  report      JSON        NOT NULL,
  error       TEXT        NOT NULL,
  started_at  DATETIME(6) NOT NULL,
  finished_at DATETIME(6) NULL,
  KEY sync_verifications_job (job_id, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
