-- Each member's own choices (/imagine-prefs, JSON) and the locale of their last interaction, so
-- that messages addressed to them (thread replies, pings) are in their language.
CREATE TABLE user_prefs (
    user_id    INTEGER PRIMARY KEY,
    locale     TEXT,
    prefs      TEXT    NOT NULL DEFAULT '{}',
    updated_at REAL    NOT NULL
);
