-- Portal sessions (internal/session): only the SHA-256 of the id given to
-- the browser is kept; a session acts as its API key, which is re-checked
-- on every request, so revoking the key ends its sessions.
CREATE TABLE IF NOT EXISTS sessions (
  id_hash    BINARY(32)   NOT NULL,
  key_id     VARCHAR(26)  NOT NULL,
  csrf_token VARCHAR(64)  NOT NULL,
  created_at DATETIME(6)  NOT NULL,
  expires_at DATETIME(6)  NOT NULL,
  PRIMARY KEY (id_hash),
  KEY sessions_expires (expires_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
