CREATE TABLE IF NOT EXISTS plans (
	id         CHAR(36)    NOT NULL PRIMARY KEY,
	name       VARCHAR(63) NOT NULL,
	engine     VARCHAR(32) NOT NULL,
	state      VARCHAR(16) NOT NULL,
	doc        LONGTEXT    NOT NULL,
	created_at DATETIME(6) NOT NULL,
	updated_at DATETIME(6) NOT NULL,
	UNIQUE KEY plans_name (name),
	KEY plans_engine_state_name (engine, state, name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
