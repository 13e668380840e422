CREATE TABLE IF NOT EXISTS api_keys (
  id           VARCHAR(26)  NOT NULL,
  tenant_id    VARCHAR(63)  NULL,
  role         VARCHAR(32)  NOT NULL,
  name         VARCHAR(400) NOT NULL,
  secret_hash  BINARY(32)   NOT NULL,
  bootstrap    BOOLEAN      NOT NULL DEFAULT FALSE,
  created_at   DATETIME(6)  NOT NULL,
  last_used_at DATETIME(6)  NULL,
  revoked_at   DATETIME(6)  NULL,
  PRIMARY KEY (id),
  KEY api_keys_tenant (tenant_id, id),
  CONSTRAINT api_keys_tenant_fk FOREIGN KEY (tenant_id) REFERENCES tenants (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
