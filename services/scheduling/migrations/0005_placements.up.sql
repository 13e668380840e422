CREATE TABLE IF NOT EXISTS placements (
	instance_id VARCHAR(64)  NOT NULL PRIMARY KEY,
	tenant_id   VARCHAR(64)  NOT NULL DEFAULT '',
	request_id  VARCHAR(255) NOT NULL DEFAULT '',
	kind        VARCHAR(16)  NOT NULL,
	mode        VARCHAR(16)  NOT NULL,
	status      VARCHAR(16)  NOT NULL,
	request     JSON         NOT NULL,
	explanation JSON         NULL,
	reason      TEXT         NULL,
	expires_at  DATETIME(6)  NULL,
	created_at  DATETIME(6)  NOT NULL,
	updated_at  DATETIME(6)  NOT NULL,
	KEY placements_expiry (status, expires_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
