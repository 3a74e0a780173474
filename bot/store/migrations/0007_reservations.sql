-- Reservations: at admission a turn reserves its worst-case cost (`reserved_usd`); spend caps
-- count the settled cost (`cost_usd`) of every turn plus the reservations of unfinished ones.
-- `own_key`: the turn is billed to its server's own OpenAI key (instance caps do not count it).
ALTER TABLE turns ADD COLUMN reserved_usd REAL NOT NULL DEFAULT 0;
ALTER TABLE turns ADD COLUMN own_key INTEGER NOT NULL DEFAULT 0;
CREATE INDEX turns_by_day ON turns (created_at);
