-- Failover (issue 11): the last failover outcome applied to an instance's
-- roles (its fencing token and recovery id, so redelivered or older outcomes
-- are ignored), a fenced former primary, and each node's promotion rule
-- (empty = neutral).
ALTER TABLE instances
  ADD COLUMN failover_token    BIGINT      NOT NULL DEFAULT 0,
  ADD COLUMN failover_recovery VARCHAR(64) NOT NULL DEFAULT '';
ALTER TABLE nodes
  ADD COLUMN fenced         BOOLEAN     NOT NULL DEFAULT FALSE,
  ADD COLUMN promotion_rule VARCHAR(16) NOT NULL DEFAULT '';
