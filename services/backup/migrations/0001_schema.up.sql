-- The backup service's state (internal/backupstore). Times are DATETIME(6)
-- in UTC (the store's sessions run with time_zone '+00:00'); NULL is "not
-- set". Objects, stats, plans and targets are JSON in the domain's shape
-- (internal/backup); wrapped data keys are the secrets keyring's sealed
-- bytes. The outbox comes from store.OutboxMigrations().

-- instances: what provisioning lists (no nodes, no credentials: those are
-- fetched fresh). deleted_at is set once provisioning no longer lists it;
-- its backups stay for their retention.
CREATE TABLE IF NOT EXISTS instances (
	id         VARCHAR(64)  NOT NULL PRIMARY KEY,
	tenant_id  VARCHAR(64)  NOT NULL,
	name       VARCHAR(255) NOT NULL DEFAULT '',
	engine     VARCHAR(16)  NOT NULL,
	plan_id    VARCHAR(128) NOT NULL DEFAULT '',
	state      VARCHAR(32)  NOT NULL DEFAULT '',
	deleted_at DATETIME(6)  NULL,
	created_at DATETIME(6)  NOT NULL,
	updated_at DATETIME(6)  NOT NULL,
	KEY instances_tenant (tenant_id, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- policy_overrides: a plan's (scope 'plan') or an instance's (scope
-- 'instance') backup.PolicyOverride, durations as strings.
CREATE TABLE IF NOT EXISTS policy_overrides (
	scope      VARCHAR(16)  NOT NULL,
	id         VARCHAR(128) NOT NULL,
	body       JSON         NOT NULL,
	updated_at DATETIME(6)  NOT NULL,
	PRIMARY KEY (scope, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- backups: one full backup or snapshot. running_instance is the instance id
-- while the backup runs and NULL otherwise: its unique key allows one
-- running backup per instance (NULLs never collide), which CreateBackup
-- turns into backup.ErrBusy.
CREATE TABLE IF NOT EXISTS backups (
	id               VARCHAR(64)   NOT NULL PRIMARY KEY,
	tenant_id        VARCHAR(64)   NOT NULL,
	instance_id      VARCHAR(64)   NOT NULL,
	engine           VARCHAR(16)   NOT NULL,
	kind             VARCHAR(16)   NOT NULL,
	trigger_kind     VARCHAR(16)   NOT NULL,
	status           VARCHAR(16)   NOT NULL,
	node_id          VARCHAR(128)  NOT NULL DEFAULT '',
	from_replica     BOOLEAN       NOT NULL DEFAULT FALSE,
	started_at       DATETIME(6)   NOT NULL,
	finished_at      DATETIME(6)   NULL,
	data_bytes       BIGINT        NOT NULL DEFAULT 0,
	stored_bytes     BIGINT        NOT NULL DEFAULT 0,
	gtid             VARCHAR(2048) NOT NULL DEFAULT '',
	consistent_at    DATETIME(6)   NULL,
	repl_offset      BIGINT        NOT NULL DEFAULT 0,
	verified         BOOLEAN       NOT NULL DEFAULT FALSE,
	verified_at      DATETIME(6)   NULL,
	stats            JSON          NULL,
	objects          JSON          NOT NULL,
	wrapped_key      VARBINARY(1024) NULL,
	copies           JSON          NOT NULL,
	monthly          BOOLEAN       NOT NULL DEFAULT FALSE,
	error            TEXT          NOT NULL,
	running_instance VARCHAR(64)   AS (IF(status = 'running', instance_id, NULL)) PERSISTENT,
	UNIQUE KEY backups_one_running (running_instance),
	KEY backups_instance_started (instance_id, started_at, id),
	KEY backups_tenant_instance (tenant_id, instance_id),
	KEY backups_status (status)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- segments: archived binlog pieces of an instance, seq from 1 without
-- holes (AppendSegment takes only last + 1; retention removes a prefix).
CREATE TABLE IF NOT EXISTS segments (
	instance_id  VARCHAR(64)     NOT NULL,
	seq          BIGINT          NOT NULL,
	tenant_id    VARCHAR(64)     NOT NULL,
	object       JSON            NOT NULL,
	wrapped_key  VARBINARY(1024) NULL,
	start_pos    VARCHAR(2048)   NOT NULL DEFAULT '',
	end_pos      VARCHAR(2048)   NOT NULL DEFAULT '',
	first_at     DATETIME(6)     NULL,
	last_at      DATETIME(6)     NULL,
	transactions INT             NOT NULL DEFAULT 0,
	source_node  VARCHAR(128)    NOT NULL DEFAULT '',
	archived_at  DATETIME(6)     NOT NULL,
	PRIMARY KEY (instance_id, seq)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- restores: restore jobs; target and plan as JSON.
CREATE TABLE IF NOT EXISTS restores (
	id                 VARCHAR(64)   NOT NULL PRIMARY KEY,
	tenant_id          VARCHAR(64)   NOT NULL,
	source_instance_id VARCHAR(64)   NOT NULL,
	target_instance_id VARCHAR(64)   NOT NULL,
	engine             VARCHAR(16)   NOT NULL,
	target             JSON          NOT NULL,
	plan               JSON          NOT NULL,
	status             VARCHAR(16)   NOT NULL,
	phase              VARCHAR(32)   NOT NULL DEFAULT '',
	seed               VARCHAR(4096) NOT NULL DEFAULT '',
	reached_gtid       VARCHAR(2048) NOT NULL DEFAULT '',
	error              TEXT          NOT NULL,
	created_at         DATETIME(6)   NOT NULL,
	updated_at         DATETIME(6)   NOT NULL,
	KEY restores_status (status),
	KEY restores_source (source_instance_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- drills: restore drill reports.
CREATE TABLE IF NOT EXISTS drills (
	id                  VARCHAR(64)  NOT NULL PRIMARY KEY,
	tenant_id           VARCHAR(64)  NOT NULL,
	instance_id         VARCHAR(64)  NOT NULL,
	backup_id           VARCHAR(64)  NOT NULL,
	status              VARCHAR(16)  NOT NULL,
	scratch_instance_id VARCHAR(64)  NOT NULL DEFAULT '',
	started_at          DATETIME(6)  NOT NULL,
	finished_at         DATETIME(6)  NULL,
	expected            JSON         NULL,
	measured            JSON         NULL,
	mismatches          JSON         NOT NULL,
	restore_seconds     DOUBLE       NOT NULL DEFAULT 0,
	error               TEXT         NOT NULL,
	KEY drills_instance_started (instance_id, started_at, id),
	KEY drills_status (status)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
