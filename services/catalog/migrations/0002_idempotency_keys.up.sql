CREATE TABLE IF NOT EXISTS idempotency_keys (
	scope        VARCHAR(128) NOT NULL,
	idem_key     VARCHAR(255) NOT NULL,
	request_hash CHAR(64)     NOT NULL,
	status       INT          NOT NULL,
	response     LONGBLOB     NOT NULL,
	created_at   DATETIME(6)  NOT NULL,
	PRIMARY KEY (scope, idem_key),
	KEY idempotency_keys_created (created_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
