-- Remix: a conversation can start from an image elsewhere (the message it was remixed from),
-- and its first turn from a bot result in another conversation (referred to by that turn's
-- stored image_generation_call ids, so the bytes need not be sent again).
ALTER TABLE conversations ADD COLUMN remixed_from_channel_id INTEGER;
ALTER TABLE conversations ADD COLUMN remixed_from_message_id INTEGER;
ALTER TABLE turns ADD COLUMN remix_of_turn_id INTEGER REFERENCES turns(id);
