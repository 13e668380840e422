-- The alerting service's state (internal/alertstore). Times are DATETIME(6)
-- in UTC (the store's sessions run with time_zone '+00:00'); a NULL time is
-- "not set" (a firing alert's unknown end, an undelivered delivery).
-- Tenant "" is the platform.

-- alerts: one row per fingerprint (Prometheus' label hash). The engine's
-- merged view; LiveAlerts reloads it at start. tenant is the tenant label
-- (any pushed value, clipped to 255 characters; real tenant ids are <= 63).
CREATE TABLE IF NOT EXISTS alerts (
	fingerprint   BIGINT UNSIGNED NOT NULL PRIMARY KEY,
	tenant        VARCHAR(255)    NOT NULL DEFAULT '',
	labels        JSON            NOT NULL,
	annotations   JSON            NOT NULL,
	starts_at     DATETIME(6)     NULL,
	ends_at       DATETIME(6)     NULL,
	state         VARCHAR(16)     NOT NULL,
	rule          VARCHAR(128)    NOT NULL DEFAULT '',
	value         DOUBLE          NULL, -- NULL: NaN or ±Inf (MySQL stores neither)
	action        VARCHAR(32)     NOT NULL DEFAULT '',
	generator_url TEXT            NOT NULL,
	updated_at    DATETIME(6)     NOT NULL,
	KEY alerts_tenant_fp (tenant, fingerprint),
	KEY alerts_state_ends (state, ends_at),
	KEY alerts_ends (ends_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- silences: expired ones stay for audit. matchers is a JSON array of
-- {"name","op","value"} (op = != =~ !~).
CREATE TABLE IF NOT EXISTS silences (
	id         CHAR(36)      NOT NULL PRIMARY KEY,
	tenant     VARCHAR(64)   NOT NULL DEFAULT '',
	matchers   JSON          NOT NULL,
	starts_at  DATETIME(6)   NOT NULL,
	ends_at    DATETIME(6)   NOT NULL,
	created_by VARCHAR(255)  NOT NULL DEFAULT '',
	comment    TEXT          NOT NULL,
	created_at DATETIME(6)   NOT NULL,
	updated_at DATETIME(6)   NOT NULL,
	KEY silences_tenant (tenant, created_at),
	KEY silences_ends (ends_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- receivers: a webhook and its route. position orders an owner's routes.
-- secret is kept readable: the sender signs with it.
CREATE TABLE IF NOT EXISTS receivers (
	id                 CHAR(36)      NOT NULL PRIMARY KEY,
	tenant             VARCHAR(64)   NOT NULL DEFAULT '',
	name               VARCHAR(255)  NOT NULL,
	url                VARCHAR(2048) NOT NULL,
	secret             VARCHAR(1024) NOT NULL DEFAULT '',
	matchers           JSON          NOT NULL,
	group_by           JSON          NOT NULL,
	group_wait_ms      BIGINT        NOT NULL,
	group_interval_ms  BIGINT        NOT NULL,
	repeat_interval_ms BIGINT        NOT NULL,
	send_resolved      BOOLEAN       NOT NULL,
	continue_flag      BOOLEAN       NOT NULL,
	position           BIGINT        NOT NULL,
	created_at         DATETIME(6)   NOT NULL,
	updated_at         DATETIME(6)   NOT NULL,
	UNIQUE KEY receivers_tenant_name (tenant, name),
	KEY receivers_tenant_position (tenant, position)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- rules: tenant rules and tenant overrides of default rules (same id as the
-- default), the rules.Rule as JSON.
CREATE TABLE IF NOT EXISTS rules (
	tenant     VARCHAR(64)  NOT NULL DEFAULT '',
	id         VARCHAR(128) NOT NULL,
	body       JSON         NOT NULL,
	created_at DATETIME(6)  NOT NULL,
	updated_at DATETIME(6)  NOT NULL,
	PRIMARY KEY (tenant, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- settings: per-tenant switches (remediation is off without a row).
CREATE TABLE IF NOT EXISTS settings (
	tenant      VARCHAR(64) NOT NULL PRIMARY KEY,
	remediation BOOLEAN     NOT NULL DEFAULT FALSE,
	updated_at  DATETIME(6) NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- nflog: the notification log, one entry per (receiver, group); the group
-- key can be long, so the key is its SHA-256. firing/resolved are JSON
-- arrays of fingerprints (numbers).
CREATE TABLE IF NOT EXISTS nflog (
	receiver       VARCHAR(64) NOT NULL,
	group_key_hash BINARY(32)  NOT NULL,
	group_key      TEXT        NOT NULL,
	firing         JSON        NOT NULL,
	resolved       JSON        NOT NULL,
	sent_at        DATETIME(6) NOT NULL,
	expires_at     DATETIME(6) NOT NULL,
	PRIMARY KEY (receiver, group_key_hash),
	KEY nflog_expires (expires_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- deliveries: the notification queue. Undelivered and not dead = queued;
-- claimed_until hides a delivery being sent (DueDeliveries) until it is
-- settled or the claim lapses (a crash mid-send: at-least-once).
CREATE TABLE IF NOT EXISTS deliveries (
	id            BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
	receiver      VARCHAR(64)     NOT NULL,
	owner         VARCHAR(64)     NOT NULL DEFAULT '',
	group_key     TEXT            NOT NULL,
	payload       MEDIUMBLOB      NOT NULL,
	attempts      INT             NOT NULL DEFAULT 0,
	next_at       DATETIME(6)     NOT NULL,
	claimed_until DATETIME(6)     NULL,
	last_error    TEXT            NOT NULL,
	created_at    DATETIME(6)     NOT NULL,
	delivered_at  DATETIME(6)     NULL,
	dead_at       DATETIME(6)     NULL,
	KEY deliveries_due (delivered_at, dead_at, next_at),
	KEY deliveries_receiver (receiver, delivered_at),
	KEY deliveries_owner_dead (owner, dead_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- action_runs: remediation attempts, kept for audit and the rate limit.
CREATE TABLE IF NOT EXISTS action_runs (
	id          BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
	fingerprint VARCHAR(16)     NOT NULL,
	tenant      VARCHAR(64)     NOT NULL DEFAULT '',
	instance_id VARCHAR(128)    NOT NULL,
	node_id     VARCHAR(128)    NOT NULL DEFAULT '',
	action      VARCHAR(32)     NOT NULL,
	status      VARCHAR(16)     NOT NULL,
	detail      TEXT            NOT NULL,
	at          DATETIME(6)     NOT NULL,
	KEY action_runs_instance (instance_id, at),
	KEY action_runs_tenant (tenant, id),
	KEY action_runs_fingerprint (fingerprint)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
