-- Initial schema: sessions, messages, runs, the SSE event log and token usage.
-- Portable between MySQL 8 and MariaDB 10.11: JSON is kept in LONGTEXT, times are UTC DATETIME(6).
-- Every statement is idempotent so a run interrupted half-way can simply be repeated.

CREATE TABLE IF NOT EXISTS sessions (
  id                  CHAR(36)      NOT NULL,
  user_id             VARCHAR(64)   NOT NULL,
  organization_id     VARCHAR(64)   NULL,
  cwd                 VARCHAR(1024) NOT NULL DEFAULT '',
  title               VARCHAR(255)  NULL,
  approval_mode       VARCHAR(32)   NULL,
  local_execution     TINYINT(1)    NOT NULL DEFAULT 1,
  headless            TINYINT(1)    NOT NULL DEFAULT 0,
  directory_context   LONGTEXT      NULL,
  instruction_context LONGTEXT      NULL,
  created_at          DATETIME(6)   NOT NULL,
  last_used           DATETIME(6)   NOT NULL,
  expired_at          DATETIME(6)   NULL,
  PRIMARY KEY (id),
  KEY ix_sessions_user_last_used (user_id, last_used)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS messages (
  id          BIGINT       NOT NULL AUTO_INCREMENT,
  session_id  CHAR(36)     NOT NULL,
  run_id      CHAR(36)     NULL,
  role        VARCHAR(16)  NOT NULL,
  content     LONGTEXT     NOT NULL,
  status      VARCHAR(16)  NOT NULL,
  created_at  DATETIME(6)  NOT NULL,
  PRIMARY KEY (id),
  KEY ix_messages_session (session_id, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS runs (
  id                    CHAR(36)     NOT NULL,
  session_id            CHAR(36)     NOT NULL,
  user_id               VARCHAR(64)  NOT NULL,
  client_run_id         VARCHAR(64)  NULL,
  status                VARCHAR(16)  NOT NULL,
  mode                  VARCHAR(16)  NULL,
  owner                 VARCHAR(64)  NOT NULL,
  heartbeat_at          DATETIME(6)  NOT NULL,
  started_at            DATETIME(6)  NOT NULL,
  finished_at           DATETIME(6)  NULL,
  finish_reason         VARCHAR(32)  NULL,
  error                 TEXT         NULL,
  input_tokens          BIGINT       NOT NULL DEFAULT 0,
  output_tokens         BIGINT       NOT NULL DEFAULT 0,
  cache_read_tokens     BIGINT       NOT NULL DEFAULT 0,
  cache_creation_tokens BIGINT       NOT NULL DEFAULT 0,
  PRIMARY KEY (id),
  KEY ix_runs_session_status (session_id, status),
  KEY ix_runs_status_heartbeat (status, heartbeat_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS events (
  session_id  CHAR(36)     NOT NULL,
  seq         BIGINT       NOT NULL,
  run_id      CHAR(36)     NOT NULL,
  type        VARCHAR(32)  NOT NULL,
  data        LONGTEXT     NOT NULL,
  created_at  DATETIME(6)  NOT NULL,
  PRIMARY KEY (session_id, seq)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS token_usage (
  id                    BIGINT       NOT NULL AUTO_INCREMENT,
  user_id               VARCHAR(64)  NOT NULL,
  session_id            CHAR(36)     NOT NULL,
  run_id                CHAR(36)     NOT NULL,
  model                 VARCHAR(128) NOT NULL,
  input_tokens          BIGINT       NOT NULL DEFAULT 0,
  output_tokens         BIGINT       NOT NULL DEFAULT 0,
  cache_read_tokens     BIGINT       NOT NULL DEFAULT 0,
  cache_creation_tokens BIGINT       NOT NULL DEFAULT 0,
  created_at            DATETIME(6)  NOT NULL,
  PRIMARY KEY (id),
  KEY ix_token_usage_user_time (user_id, created_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
