-- OSB instance and binding ids are opaque strings that compare exactly
-- (Open Service Broker 2.17): "ABC" and "abc" are two instances. The table
-- default collation is case- and accent-insensitive, and utf8mb4_bin still
-- ignores trailing spaces, so osb_id becomes VARBINARY: every byte counts in
-- the unique keys and lookups, on MariaDB and MySQL 8. Canopy names need no change:
-- they are lower-case only. Existing rows cannot clash: the old unique keys
-- already kept ids apart under the looser comparison.
ALTER TABLE instances MODIFY osb_id VARBINARY(255) NULL;
ALTER TABLE bindings MODIFY osb_id VARBINARY(255) NULL;
-- What an OSB bind asked for (service, plan, app_guid, parameters), so a
-- repeated PUT with other attributes is a 409, not the first binding's 200.
-- Empty for bindings made before this column or through /api/v1.
ALTER TABLE bindings ADD COLUMN request_hash CHAR(64) NOT NULL DEFAULT '';
