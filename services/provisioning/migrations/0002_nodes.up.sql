CREATE TABLE nodes (
  id          VARCHAR(100)  NOT NULL PRIMARY KEY,
  instance_id VARCHAR(64)   NOT NULL,
  name        VARCHAR(32)   NOT NULL,
  role        VARCHAR(16)   NOT NULL,
  region_role VARCHAR(16)   NOT NULL,
  region      VARCHAR(64)   NOT NULL,
  az          VARCHAR(64)   NOT NULL,
  host        VARCHAR(255)  NOT NULL,
  port        INT           NOT NULL,
  address     VARCHAR(300)  NOT NULL,
  state       VARCHAR(16)   NOT NULL,
  pid         INT           NOT NULL DEFAULT 0,
  data_dir    VARCHAR(1024) NOT NULL DEFAULT '',
  settings    LONGTEXT      NULL,
  KEY nodes_instance (instance_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
