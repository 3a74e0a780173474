-- The moderation log and reports (issue 25). A server's log channel (NULL: no log; switched off
-- when the bot can no longer post there).
CREATE TABLE moderation_settings (
    guild_id       INTEGER PRIMARY KEY,
    log_channel_id INTEGER,
    updated_at     REAL    NOT NULL
);
-- Reports of one result: repeated reports of one turn fold into its open report (`reporters`:
-- JSON [{"user_id", "reason", "at"}]); `channel_id`/`message_id`: where its entry was posted.
CREATE TABLE reports (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    guild_id   INTEGER NOT NULL,
    turn_id    INTEGER NOT NULL,
    status     TEXT    NOT NULL DEFAULT 'open',
    reporters  TEXT    NOT NULL DEFAULT '[]',
    channel_id INTEGER,
    message_id INTEGER,
    created_at REAL    NOT NULL,
    updated_at REAL    NOT NULL
);
CREATE UNIQUE INDEX reports_open_turn ON reports (turn_id) WHERE status = 'open';
