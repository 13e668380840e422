-- Restores (issue 17): an instance ordered with restore_from records the
-- backup service's restore job it is made from (id, source instance, target,
-- then the seed directory once ready) as JSON; NULL for every other
-- instance. An operation's step_detail says where a step that waits on
-- another service stands (restoring: the restore job's phase).
ALTER TABLE instances ADD COLUMN restore LONGTEXT NULL;
ALTER TABLE operations ADD COLUMN step_detail VARCHAR(255) NOT NULL DEFAULT '';
