-- The engine asks, per instance and tick, whether an instance is a drill's
-- scratch instance (no backups, archiving or drills of its own).
CREATE INDEX drills_scratch ON drills (scratch_instance_id);
