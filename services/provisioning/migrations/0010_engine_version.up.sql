-- Truthful catalog (issue 19): the server build an instance's nodes run,
-- as the engine reported it when the instance became ready
-- ("mariadb-10.11.19", "redis-7.0.15"); '' for instances made before.
ALTER TABLE instances ADD COLUMN engine_version VARCHAR(64) NOT NULL DEFAULT '';
