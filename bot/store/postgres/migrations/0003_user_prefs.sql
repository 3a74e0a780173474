-- Mirrors bot/store/migrations/0003_user_prefs.sql: each member's own choices (JSON) and the
-- locale of their last interaction.
CREATE TABLE user_prefs (
    user_id    BIGINT PRIMARY KEY,
    locale     TEXT,
    prefs      TEXT    NOT NULL DEFAULT '{}',
    updated_at DOUBLE PRECISION NOT NULL
);
