CREATE TABLE operations (
  id          VARCHAR(64)  NOT NULL PRIMARY KEY,
  instance_id VARCHAR(64)  NOT NULL,
  tenant      VARCHAR(64)  NOT NULL,
  type        VARCHAR(16)  NOT NULL,
  state       VARCHAR(16)  NOT NULL,
  step        VARCHAR(16)  NOT NULL,
  started_at  DATETIME(6)  NOT NULL,
  finished_at DATETIME(6)  NULL,
  error       TEXT         NOT NULL,
  KEY operations_instance (instance_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
