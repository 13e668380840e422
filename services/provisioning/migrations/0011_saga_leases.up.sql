-- Saga leases (issue 19): which provisioning replica drives an instance.
-- A replica drives an instance only while it holds the row's lease
-- (owner, expires_at in the database's clock); token grows by one with
-- every acquisition and fences the saga's writes to the instance row: a
-- write carrying an older token is refused. The row outlives the lease
-- (owner is the last holder) so the token never goes back.
CREATE TABLE saga_leases (
    instance_id VARCHAR(64) NOT NULL PRIMARY KEY,
    owner VARCHAR(128) NOT NULL,
    token BIGINT UNSIGNED NOT NULL,
    expires_at DATETIME(6) NOT NULL
);
