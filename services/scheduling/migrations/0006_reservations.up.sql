-- One row per booked node. The unique (host_id, port) key makes two
-- schedulers that pick the same port on a host conflict instead of clash.
CREATE TABLE IF NOT EXISTS reservations (
	instance_id VARCHAR(64)  NOT NULL,
	node_name   VARCHAR(64)  NOT NULL,
	role        VARCHAR(64)  NOT NULL,
	host_id     VARCHAR(64)  NOT NULL,
	region_id   VARCHAR(64)  NOT NULL,
	zone_id     VARCHAR(64)  NOT NULL,
	address     VARCHAR(255) NOT NULL,
	port        INT          NOT NULL,
	mcpu        BIGINT       NOT NULL,
	memory_mb   BIGINT       NOT NULL,
	storage_gb  BIGINT       NOT NULL,
	score       DOUBLE       NOT NULL DEFAULT 0,
	created_at  DATETIME(6)  NOT NULL,
	PRIMARY KEY (instance_id, node_name),
	UNIQUE KEY reservations_host_port (host_id, port),
	CONSTRAINT reservations_host_fk FOREIGN KEY (host_id) REFERENCES hosts (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
