-- The event writer lets the server stamp each event (one multi-row INSERT per batch).
-- Re-running this statement changes nothing.

ALTER TABLE events MODIFY created_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6);
