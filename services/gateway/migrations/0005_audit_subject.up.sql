-- key_id also holds subjects of callers without an API key, e.g.
-- "osb:<broker username>" (usernames of up to 64 characters).
ALTER TABLE audit_log MODIFY key_id VARCHAR(80) NOT NULL;
