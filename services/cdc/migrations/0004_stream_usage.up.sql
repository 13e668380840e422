-- A stream's rows not reported in a cdc.stream.usage event yet: added in the
-- same UPDATE as the checkpoint that covers them, zeroed in the transaction
-- that writes the event to the outbox, so a crash neither loses nor doubles
-- any. usage_from is when the first of them was counted.
ALTER TABLE streams
  ADD COLUMN IF NOT EXISTS usage_rows BIGINT      NOT NULL DEFAULT 0,
  ADD COLUMN IF NOT EXISTS usage_from DATETIME(6) NULL;
