-- Mirrors bot/store/migrations/0012_input_retention.sql: a turn whose attached images were
-- deleted after INPUT_RETENTION_DAYS.
ALTER TABLE turns ADD COLUMN inputs_pruned INTEGER NOT NULL DEFAULT 0;
