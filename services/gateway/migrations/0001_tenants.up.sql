CREATE TABLE IF NOT EXISTS tenants (
  id               VARCHAR(63)  NOT NULL,
  name             VARCHAR(800) NOT NULL,
  rate_limit_rps   INT          NOT NULL DEFAULT 0,
  rate_limit_burst INT          NOT NULL DEFAULT 0,
  max_instances    BIGINT       NOT NULL DEFAULT 0,
  max_vcpu         DOUBLE       NOT NULL DEFAULT 0,
  max_memory_mb    BIGINT       NOT NULL DEFAULT 0,
  max_storage_gb   BIGINT       NOT NULL DEFAULT 0,
  created_at       DATETIME(6)  NOT NULL,
  updated_at       DATETIME(6)  NOT NULL,
  PRIMARY KEY (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
