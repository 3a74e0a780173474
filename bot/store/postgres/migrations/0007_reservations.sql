-- Mirrors bot/store/migrations/0007_reservations.sql: a turn's reserved worst-case cost (caps
-- count settled cost plus the reservations of unfinished turns), and whether it is billed to its
-- server's own OpenAI key (instance caps leave those out).
ALTER TABLE turns ADD COLUMN reserved_usd DOUBLE PRECISION NOT NULL DEFAULT 0;
ALTER TABLE turns ADD COLUMN own_key INTEGER NOT NULL DEFAULT 0;
CREATE INDEX turns_by_day ON turns (created_at);
