-- Per-tenant rollups of usage_hour and usage_day without the subject
-- (GET /api/v1/usage not grouped by instance): a tenant's month by day
-- reads 30 rows per (plan, region) instead of 30 per instance. The ledger
-- adds to them in the transaction that adds to the subject tables. Only
-- SUM, COUNT and AVG meters are read from here (total and cnt add up
-- across subjects); maximum is kept (GREATEST) but not read. total has
-- room beyond the subject tables' 29 integer digits: it sums subjects.
-- IF NOT EXISTS and the backfill's "set, not add" let a file that failed
-- halfway run again.
CREATE TABLE IF NOT EXISTS usage_tenant_hour (
  tenant_id    VARCHAR(64)   NOT NULL,
  meter        VARCHAR(64)   NOT NULL,
  window_start DATETIME      NOT NULL,
  plan_id      VARCHAR(64)   NOT NULL DEFAULT '',
  region       VARCHAR(64)   NOT NULL DEFAULT '',
  total        DECIMAL(65,9) NOT NULL DEFAULT 0,
  cnt          BIGINT        NOT NULL DEFAULT 0,
  maximum      DECIMAL(38,9) NULL,
  PRIMARY KEY (tenant_id, meter, window_start, plan_id, region),
  KEY usage_tenant_hour_all (meter, window_start)
) ENGINE=InnoDB;

CREATE TABLE IF NOT EXISTS usage_tenant_day (
  tenant_id    VARCHAR(64)   NOT NULL,
  meter        VARCHAR(64)   NOT NULL,
  window_start DATETIME      NOT NULL,
  plan_id      VARCHAR(64)   NOT NULL DEFAULT '',
  region       VARCHAR(64)   NOT NULL DEFAULT '',
  total        DECIMAL(65,9) NOT NULL DEFAULT 0,
  cnt          BIGINT        NOT NULL DEFAULT 0,
  maximum      DECIMAL(38,9) NULL,
  PRIMARY KEY (tenant_id, meter, window_start, plan_id, region),
  KEY usage_tenant_day_all (meter, window_start)
) ENGINE=InnoDB;

-- Usage stored before this migration. A ledger of the previous release
-- still writing while this runs (rolling deploy) would leave the rollups
-- short of what it adds afterwards: stop ledgers before migrating.
INSERT INTO usage_tenant_hour (tenant_id, meter, window_start, plan_id, region, total, cnt, maximum)
  SELECT tenant_id, meter, window_start, plan_id, region, SUM(total), SUM(cnt), MAX(maximum)
  FROM usage_hour GROUP BY tenant_id, meter, window_start, plan_id, region
  ON DUPLICATE KEY UPDATE total = VALUES(total), cnt = VALUES(cnt), maximum = VALUES(maximum);

INSERT INTO usage_tenant_day (tenant_id, meter, window_start, plan_id, region, total, cnt, maximum)
  SELECT tenant_id, meter, window_start, plan_id, region, SUM(total), SUM(cnt), MAX(maximum)
  FROM usage_day GROUP BY tenant_id, meter, window_start, plan_id, region
  ON DUPLICATE KEY UPDATE total = VALUES(total), cnt = VALUES(cnt), maximum = VALUES(maximum);
