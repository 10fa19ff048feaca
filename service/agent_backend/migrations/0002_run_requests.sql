-- Requests for a run that reached a replica other than the one running it (a tool result, a cancel).
-- The owning replica polls this table for its live runs and deletes what it has handled.

CREATE TABLE IF NOT EXISTS run_requests (
  id          BIGINT        NOT NULL AUTO_INCREMENT,
  run_id      CHAR(36)      NOT NULL,
  kind        VARCHAR(16)   NOT NULL,
  request_id  VARCHAR(256)  NULL,
  payload     LONGTEXT      NULL,
  created_at  DATETIME(6)   NOT NULL,
  PRIMARY KEY (id),
  KEY ix_run_requests_run (run_id, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
