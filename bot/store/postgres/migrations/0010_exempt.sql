-- Mirrors bot/store/migrations/0010_exempt.sql: whether a turn's author was exempt from the
-- server's limits when it was admitted (the fleet queue's claim checks the limits again).
ALTER TABLE turns ADD COLUMN exempt INTEGER NOT NULL DEFAULT 0;
