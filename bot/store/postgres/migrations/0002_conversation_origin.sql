-- Mirrors bot/store/migrations/0002_conversation_origin.sql: `bot_opened` says a conversation is
-- a thread the bot opened (or a DM channel); NULL = unknown, checked against Discord when used.
ALTER TABLE conversations ADD COLUMN bot_opened INTEGER;
UPDATE conversations SET bot_opened = 1 WHERE guild_id IS NULL;
