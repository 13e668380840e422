CREATE TABLE IF NOT EXISTS zones (
	id         VARCHAR(64)  NOT NULL PRIMARY KEY,
	region_id  VARCHAR(64)  NOT NULL,
	name       VARCHAR(255) NOT NULL DEFAULT '',
	created_at DATETIME(6)  NOT NULL,
	updated_at DATETIME(6)  NOT NULL,
	KEY zones_region (region_id),
	CONSTRAINT zones_region_fk FOREIGN KEY (region_id) REFERENCES regions (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
