-- Mirrors bot/store/migrations/0015_deliveries.sql: a billed result recorded before it is
-- posted, kept until Discord shows it (an outage or a restart never loses a paid image; Retry
-- posts it instead of paying again); removed in the write that records the turn done.
CREATE TABLE deliveries (
    turn_id     BIGINT PRIMARY KEY REFERENCES turns(id) ON DELETE CASCADE,
    response_id TEXT,
    text        TEXT,
    usage       TEXT    NOT NULL DEFAULT '{}',
    rerooted    INTEGER NOT NULL DEFAULT 0,
    recorded_at DOUBLE PRECISION NOT NULL
);

CREATE TABLE delivery_images (
    turn_id        BIGINT  NOT NULL REFERENCES deliveries(turn_id) ON DELETE CASCADE,
    position       INTEGER NOT NULL,
    call_id        TEXT    NOT NULL,
    output_format  TEXT    NOT NULL,
    size           TEXT,
    revised_prompt TEXT,
    reasoning_id   TEXT,
    data           BYTEA   NOT NULL,
    PRIMARY KEY (turn_id, position)
);
