-- Mirrors bot/store/migrations/0014_text_spend_own_key.sql: a text-only call billed to the
-- server's own key (instance caps leave it out).
ALTER TABLE text_spend ADD COLUMN own_key INTEGER NOT NULL DEFAULT 0;
