-- Spend outside image turns: text-only calls such as /describe, priced by the mainline model.
-- Spend caps count it together with the turns' cost.
CREATE TABLE text_spend (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    guild_id   INTEGER,
    author_id  INTEGER NOT NULL,
    kind       TEXT    NOT NULL,
    usage      TEXT    NOT NULL DEFAULT '{}',
    cost_usd   REAL    NOT NULL DEFAULT 0,
    created_at REAL    NOT NULL
);
CREATE INDEX text_spend_by_day ON text_spend (created_at);
