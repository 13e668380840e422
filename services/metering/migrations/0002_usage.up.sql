-- Usage of one instance (GET /api/v1/usage?instance=…): the primary keys
-- lead with (tenant_id, meter, window_start), so a subject filter would
-- scan every subject of the tenant in the range; these keys find one
-- subject's windows directly (IF NOT EXISTS: a file that failed halfway
-- can run again). usage_minute has none: it is the ledger's
-- hottest table and minute queries span at most 48 hours.
ALTER TABLE usage_hour ADD KEY IF NOT EXISTS usage_hour_subject (tenant_id, subject, meter, window_start);
ALTER TABLE usage_day ADD KEY IF NOT EXISTS usage_day_subject (tenant_id, subject, meter, window_start);
