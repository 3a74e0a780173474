-- `own_key` on text-only calls (/describe): billed to the server's own OpenAI key where it set
-- one, so the instance's caps leave it out, as they leave out such turns.
ALTER TABLE text_spend ADD COLUMN own_key INTEGER NOT NULL DEFAULT 0;
