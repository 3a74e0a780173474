-- Whether a turn's author was exempt from the server's limits (an exempt role) when the turn was
-- admitted: the fleet queue checks the limits again when it claims the turn, without the roles.
ALTER TABLE turns ADD COLUMN exempt INTEGER NOT NULL DEFAULT 0;
