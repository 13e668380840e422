CREATE TABLE bindings (
  id          VARCHAR(64)     NOT NULL PRIMARY KEY,
  instance_id VARCHAR(64)     NOT NULL,
  tenant      VARCHAR(64)     NOT NULL,
  name        VARCHAR(63)     NOT NULL,
  osb_id      VARCHAR(255)    NULL,
  username    VARCHAR(80)     NOT NULL,
  secret      VARBINARY(1024) NOT NULL,
  deleted     BOOLEAN         NOT NULL DEFAULT FALSE,
  created_at  DATETIME(6)     NOT NULL,
  deleted_at  DATETIME(6)     NULL,
  live_name   VARCHAR(63)     AS (IF(deleted, NULL, name)) STORED,
  UNIQUE KEY bindings_instance_live_name (instance_id, live_name),
  UNIQUE KEY bindings_instance_osb (instance_id, osb_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE tenant_locks (
  tenant VARCHAR(64) NOT NULL PRIMARY KEY
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
