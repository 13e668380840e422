-- P95 latency between two zones of one region or two regions; a < b.
CREATE TABLE IF NOT EXISTS latencies (
	a      VARCHAR(64) NOT NULL,
	b      VARCHAR(64) NOT NULL,
	p95_ms DOUBLE      NOT NULL,
	PRIMARY KEY (a, b)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
