CREATE TABLE IF NOT EXISTS rejoins (
  id          VARCHAR(26) NOT NULL PRIMARY KEY,
  instance_id VARCHAR(64) NOT NULL,
  tenant_id   VARCHAR(64) NOT NULL,
  node_id     VARCHAR(64) NOT NULL,
  primary_id  VARCHAR(64) NOT NULL,
  rebuilt     BOOLEAN     NOT NULL,
  lost        LONGTEXT    NOT NULL,
  occurred_at DATETIME(6) NOT NULL,
  KEY rejoins_instance (instance_id, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
