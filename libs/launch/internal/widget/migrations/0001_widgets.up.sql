CREATE TABLE IF NOT EXISTS widgets (
  id         VARCHAR(26)  NOT NULL PRIMARY KEY,
  tenant_id  VARCHAR(64)  NOT NULL,
  name       VARCHAR(200) NOT NULL,
  created_at DATETIME(6)  NOT NULL,
  KEY widgets_tenant (tenant_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
