-- Router endpoints (issue 12): every instance's read-write and read-only
-- ports on the router, NULL for an instance that has none yet (created
-- before the router, or with it disabled). router_ports holds one row per
-- port a live instance holds: its primary key is what keeps two concurrent
-- creates (of any tenants) from sharing a port, whichever column they would
-- put it in; the loser of the race retries with the next free pair. A
-- deleted instance's rows go, returning its ports to the pool; the columns
-- keep them as history. The live_* unique keys say the same on the
-- instances table itself.
ALTER TABLE instances
  ADD COLUMN router_rw_port INT NULL,
  ADD COLUMN router_ro_port INT NULL,
  ADD COLUMN live_router_rw_port INT AS (IF(state = 'deleted', NULL, router_rw_port)) STORED,
  ADD COLUMN live_router_ro_port INT AS (IF(state = 'deleted', NULL, router_ro_port)) STORED,
  ADD UNIQUE KEY instances_live_router_rw (live_router_rw_port),
  ADD UNIQUE KEY instances_live_router_ro (live_router_ro_port);
CREATE TABLE router_ports (
  port        INT         NOT NULL PRIMARY KEY,
  instance_id VARCHAR(64) NOT NULL,
  KEY router_ports_instance (instance_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
