CREATE TABLE IF NOT EXISTS broker_credentials (
	id            CHAR(36)     NOT NULL PRIMARY KEY,
	username      VARCHAR(64)  NOT NULL,
	password_hash CHAR(64)     NOT NULL,
	name          VARCHAR(63)  NOT NULL,
	tenant        VARCHAR(63)  NOT NULL DEFAULT '',
	created_by    VARCHAR(255) NOT NULL DEFAULT '',
	created_at    DATETIME(6)  NOT NULL,
	revoked_at    DATETIME(6)  NULL,
	UNIQUE KEY broker_credentials_username (username),
	KEY broker_credentials_created (created_at, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
