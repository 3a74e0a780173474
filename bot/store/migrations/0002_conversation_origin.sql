-- A conversation is a thread the bot opened (or a DM channel): `bot_opened` says so.
-- Before this column existed, `/imagine` inside any thread adopted it; such rows are left NULL
-- ("unknown") and checked against Discord (who owns the thread) the next time they are used.
ALTER TABLE conversations ADD COLUMN bot_opened INTEGER;
UPDATE conversations SET bot_opened = 1 WHERE guild_id IS NULL;
