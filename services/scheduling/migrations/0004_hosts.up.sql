-- Allocation lives on the host row and only changes through conditional
-- updates (see docs/scheduling.md); the CHECK is the last line of defence
-- against overcommit.
CREATE TABLE IF NOT EXISTS hosts (
	id               VARCHAR(64)  NOT NULL PRIMARY KEY,
	region_id        VARCHAR(64)  NOT NULL,
	zone_id          VARCHAR(64)  NOT NULL,
	address          VARCHAR(255) NOT NULL,
	port_from        INT          NOT NULL,
	port_to          INT          NOT NULL,
	cap_mcpu         BIGINT       NOT NULL,
	cap_memory_mb    BIGINT       NOT NULL,
	cap_storage_gb   BIGINT       NOT NULL,
	alloc_mcpu       BIGINT       NOT NULL DEFAULT 0,
	alloc_memory_mb  BIGINT       NOT NULL DEFAULT 0,
	alloc_storage_gb BIGINT       NOT NULL DEFAULT 0,
	labels           JSON         NOT NULL,
	price_vcpu_hour  DOUBLE       NOT NULL DEFAULT 0,
	price_gb_hour    DOUBLE       NOT NULL DEFAULT 0,
	spot             BOOLEAN      NOT NULL DEFAULT FALSE,
	state            VARCHAR(16)  NOT NULL,
	version          BIGINT       NOT NULL DEFAULT 1,
	created_at       DATETIME(6)  NOT NULL,
	updated_at       DATETIME(6)  NOT NULL,
	KEY hosts_zone (zone_id),
	CONSTRAINT hosts_zone_fk FOREIGN KEY (zone_id) REFERENCES zones (id),
	CONSTRAINT hosts_no_overcommit CHECK (
		alloc_mcpu >= 0 AND alloc_memory_mb >= 0 AND alloc_storage_gb >= 0 AND
		alloc_mcpu <= cap_mcpu AND alloc_memory_mb <= cap_memory_mb AND alloc_storage_gb <= cap_storage_gb)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
