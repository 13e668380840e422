-- Meters: the built-in ones are upserted at every start; platform-admins add
-- custom ones over ingested CloudEvents.
CREATE TABLE meters (
  slug           VARCHAR(64)   NOT NULL PRIMARY KEY,
  name           VARCHAR(128)  NOT NULL,
  description    VARCHAR(512)  NOT NULL DEFAULT '',
  unit           VARCHAR(32)   NOT NULL,
  aggregation    VARCHAR(16)   NOT NULL,
  -- scale: stored quantity per display unit (node_hours stores node-seconds: 3600).
  scale          DECIMAL(30,9) NOT NULL DEFAULT 1,
  event_type     VARCHAR(255)  NOT NULL DEFAULT '',
  value_property VARCHAR(255)  NOT NULL DEFAULT '',
  builtin        BOOLEAN       NOT NULL DEFAULT FALSE,
  created_at     DATETIME(6)   NOT NULL,
  KEY meters_event_type (event_type)
) ENGINE=InnoDB;

-- Consumed offsets, committed in the same transaction as what they produced.
CREATE TABLE consumer_offsets (
  topic       VARCHAR(255) NOT NULL,
  part        INT          NOT NULL,
  next_offset BIGINT       NOT NULL,
  updated_at  DATETIME(6)  NOT NULL,
  PRIMARY KEY (topic, part)
) ENGINE=InnoDB;

-- What metering knows of each instance (from canopy.instances.v1): for
-- tenant scoping of samples and ingested events, and for grouping.
CREATE TABLE instances (
  instance_id VARCHAR(64)   NOT NULL PRIMARY KEY,
  tenant_id   VARCHAR(64)   NOT NULL,
  name        VARCHAR(255)  NOT NULL DEFAULT '',
  plan_id     VARCHAR(64)   NOT NULL DEFAULT '',
  region      VARCHAR(64)   NOT NULL DEFAULT '',
  engine      VARCHAR(32)   NOT NULL DEFAULT '',
  state       VARCHAR(32)   NOT NULL DEFAULT '',
  vcpu        DECIMAL(10,3) NOT NULL DEFAULT 0,
  memory_mb   BIGINT        NOT NULL DEFAULT 0,
  storage_gb  BIGINT        NOT NULL DEFAULT 0,
  created_at  DATETIME(6)   NOT NULL,
  updated_at  DATETIME(6)   NOT NULL,
  deleted_at  DATETIME(6)   NULL,
  KEY instances_tenant (tenant_id)
) ENGINE=InnoDB;

-- A node's billed interval: opened when the node becomes billable, closed
-- when it stops being. accrued_until is how far its usage is in usage_*.
CREATE TABLE node_intervals (
  instance_id   VARCHAR(64)   NOT NULL,
  node_id       VARCHAR(64)   NOT NULL,
  started_at    DATETIME(6)   NOT NULL,
  ended_at      DATETIME(6)   NULL,
  accrued_until DATETIME(6)   NOT NULL,
  tenant_id     VARCHAR(64)   NOT NULL,
  plan_id       VARCHAR(64)   NOT NULL,
  region        VARCHAR(64)   NOT NULL,
  vcpu          DECIMAL(10,3) NOT NULL,
  memory_mb     BIGINT        NOT NULL,
  storage_gb    BIGINT        NOT NULL,
  PRIMARY KEY (instance_id, node_id, started_at),
  KEY node_intervals_open (ended_at)
) ENGINE=InnoDB;

-- Last value of a node's engine counter or gauge (network bytes, operations,
-- storage used) and the engine's uptime then, for reset-aware deltas.
CREATE TABLE node_counters (
  node_id     VARCHAR(64) NOT NULL,
  name        VARCHAR(64) NOT NULL,
  value       BIGINT      NOT NULL,
  uptime      BIGINT      NOT NULL,
  sampled_at  DATETIME(6) NOT NULL,
  PRIMARY KEY (node_id, name)
) ENGINE=InnoDB;

-- Aggregates, one table per level; all three move in the same transaction.
-- total: SUM and the AVG numerator; cnt: COUNT and the AVG denominator;
-- maximum: MAX. Values are in the meter's stored unit (see meters.scale).
CREATE TABLE usage_minute (
  tenant_id    VARCHAR(64)   NOT NULL,
  meter        VARCHAR(64)   NOT NULL,
  window_start DATETIME      NOT NULL,
  subject      VARCHAR(255)  NOT NULL,
  plan_id      VARCHAR(64)   NOT NULL DEFAULT '',
  region       VARCHAR(64)   NOT NULL DEFAULT '',
  total        DECIMAL(38,9) NOT NULL DEFAULT 0,
  cnt          BIGINT        NOT NULL DEFAULT 0,
  maximum      DECIMAL(38,9) NULL,
  PRIMARY KEY (tenant_id, meter, window_start, subject, plan_id, region),
  KEY usage_minute_all (meter, window_start)
) ENGINE=InnoDB;

CREATE TABLE usage_hour LIKE usage_minute;
CREATE TABLE usage_day LIKE usage_minute;

-- Distinct values of UNIQUE_COUNT meters per hour ('h'), day ('d') and
-- month ('M'); the count is taken when read.
CREATE TABLE usage_unique (
  level        CHAR(1)      NOT NULL,
  tenant_id    VARCHAR(64)  NOT NULL,
  meter        VARCHAR(64)  NOT NULL,
  window_start DATETIME     NOT NULL,
  subject      VARCHAR(255) NOT NULL,
  plan_id      VARCHAR(64)  NOT NULL DEFAULT '',
  region       VARCHAR(64)  NOT NULL DEFAULT '',
  value_hash   BIGINT UNSIGNED NOT NULL,
  PRIMARY KEY (level, tenant_id, meter, window_start, subject, plan_id, region, value_hash)
) ENGINE=InnoDB;

-- Ingested CloudEvents seen, by sha256(source NUL id)[:16]; (part, off) is
-- where the first copy was read, which tells a redelivered batch from a
-- duplicate.
CREATE TABLE ingest_dedup (
  k           BINARY(16) NOT NULL PRIMARY KEY,
  part        INT        NOT NULL,
  off         BIGINT     NOT NULL,
  received_at DATETIME   NOT NULL,
  KEY ingest_dedup_received (received_at)
) ENGINE=InnoDB;

-- Events that came later than the grace window: recorded and reported, not
-- counted.
CREATE TABLE late_events (
  id          BIGINT        NOT NULL AUTO_INCREMENT PRIMARY KEY,
  tenant_id   VARCHAR(64)   NOT NULL,
  source      VARCHAR(255)  NOT NULL,
  event_id    VARCHAR(255)  NOT NULL,
  type        VARCHAR(255)  NOT NULL,
  subject     VARCHAR(255)  NOT NULL DEFAULT '',
  meter       VARCHAR(64)   NOT NULL DEFAULT '',
  value       DECIMAL(38,9) NOT NULL DEFAULT 0,
  event_time  DATETIME(6)   NOT NULL,
  received_at DATETIME(6)   NOT NULL,
  reason      VARCHAR(255)  NOT NULL,
  KEY late_events_tenant (tenant_id, received_at)
) ENGINE=InnoDB;

-- Prices per display unit of a meter, versioned: a version applies from
-- effective_from (an hour boundary) until the next. plan_id '*' prices a
-- meter for every plan without its own price.
CREATE TABLE prices (
  plan_id        VARCHAR(64)   NOT NULL,
  meter          VARCHAR(64)   NOT NULL,
  effective_from DATETIME      NOT NULL,
  currency       CHAR(3)       NOT NULL,
  unit_price     DECIMAL(20,9) NOT NULL,
  source         VARCHAR(16)   NOT NULL,
  created_at     DATETIME(6)   NOT NULL,
  PRIMARY KEY (plan_id, meter, effective_from)
) ENGINE=InnoDB;

-- Closed invoices, immutable.
CREATE TABLE invoices (
  tenant_id VARCHAR(64)   NOT NULL,
  month     CHAR(7)       NOT NULL,
  currency  CHAR(3)       NOT NULL,
  total     DECIMAL(20,2) NOT NULL,
  closed_at DATETIME(6)   NOT NULL,
  PRIMARY KEY (tenant_id, month)
) ENGINE=InnoDB;

CREATE TABLE invoice_lines (
  tenant_id     VARCHAR(64)   NOT NULL,
  month         CHAR(7)       NOT NULL,
  line_no       INT           NOT NULL,
  instance_id   VARCHAR(255)  NOT NULL,
  instance_name VARCHAR(255)  NOT NULL DEFAULT '',
  plan_id       VARCHAR(64)   NOT NULL DEFAULT '',
  meter         VARCHAR(64)   NOT NULL,
  unit          VARCHAR(32)   NOT NULL,
  quantity      DECIMAL(38,9) NOT NULL,
  unit_price    DECIMAL(20,9) NOT NULL,
  price_from    DATETIME      NOT NULL,
  amount        DECIMAL(20,2) NOT NULL,
  PRIMARY KEY (tenant_id, month, line_no)
) ENGINE=InnoDB;

CREATE TABLE budgets (
  tenant_id  VARCHAR(64)   NOT NULL PRIMARY KEY,
  amount     DECIMAL(20,2) NOT NULL,
  currency   CHAR(3)       NOT NULL,
  thresholds VARCHAR(64)   NOT NULL,
  updated_at DATETIME(6)   NOT NULL
) ENGINE=InnoDB;

-- Thresholds already announced, once per tenant, month, kind and percent.
CREATE TABLE budget_crossings (
  tenant_id  VARCHAR(64)   NOT NULL,
  month      CHAR(7)       NOT NULL,
  kind       VARCHAR(16)   NOT NULL,
  threshold  INT           NOT NULL,
  amount     DECIMAL(20,2) NOT NULL,
  crossed_at DATETIME(6)   NOT NULL,
  PRIMARY KEY (tenant_id, month, kind, threshold)
) ENGINE=InnoDB;

-- Progress of the periodic jobs (rated_through, invoices_closed_through).
CREATE TABLE cursors (
  name VARCHAR(64) NOT NULL PRIMARY KEY,
  at   DATETIME(6) NOT NULL
) ENGINE=InnoDB;
