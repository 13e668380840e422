CREATE TABLE IF NOT EXISTS audit_log (
  id         BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  at         DATETIME(6)     NOT NULL,
  key_id     VARCHAR(26)     NOT NULL,
  tenant_id  VARCHAR(63)     NULL,
  role       VARCHAR(32)     NOT NULL,
  method     VARCHAR(10)     NOT NULL,
  path       VARCHAR(1024)   NOT NULL,
  status     SMALLINT        NOT NULL,
  request_id VARCHAR(128)    NOT NULL DEFAULT '',
  PRIMARY KEY (id),
  KEY audit_tenant (tenant_id, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
