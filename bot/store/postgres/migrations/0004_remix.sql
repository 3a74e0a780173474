-- Mirrors bot/store/migrations/0004_remix.sql: the message a remix conversation started from,
-- and the bot result (any conversation) a remix's first turn continues from.
ALTER TABLE conversations ADD COLUMN remixed_from_channel_id BIGINT;
ALTER TABLE conversations ADD COLUMN remixed_from_message_id BIGINT;
ALTER TABLE turns ADD COLUMN remix_of_turn_id BIGINT REFERENCES turns(id);
