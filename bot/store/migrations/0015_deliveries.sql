-- A billed result recorded before it is posted (bot/core/delivery.py): what the API returned,
-- kept until Discord shows it, so that an outage or a restart never loses a paid image and Retry
-- posts it instead of paying again. Removed in the same write that records the turn done.
CREATE TABLE deliveries (
    turn_id     INTEGER PRIMARY KEY REFERENCES turns(id) ON DELETE CASCADE,
    response_id TEXT,
    text        TEXT,
    usage       TEXT    NOT NULL DEFAULT '{}',
    rerooted    INTEGER NOT NULL DEFAULT 0,
    recorded_at REAL    NOT NULL
);

CREATE TABLE delivery_images (
    turn_id        INTEGER NOT NULL REFERENCES deliveries(turn_id) ON DELETE CASCADE,
    position       INTEGER NOT NULL,
    call_id        TEXT    NOT NULL,
    output_format  TEXT    NOT NULL,
    size           TEXT,
    revised_prompt TEXT,
    reasoning_id   TEXT,
    data           BLOB    NOT NULL,
    PRIMARY KEY (turn_id, position)
);
