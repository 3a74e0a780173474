-- Conversations are Discord threads (or DM channels); turns form a tree inside one.
CREATE TABLE conversations (
    id                INTEGER PRIMARY KEY,
    guild_id          INTEGER,
    parent_channel_id INTEGER,
    owner_id          INTEGER NOT NULL,
    head_turn_id      INTEGER,
    options           TEXT    NOT NULL DEFAULT '{}',
    created_at        REAL    NOT NULL
);

CREATE TABLE turns (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    conversation_id     INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    parent_id           INTEGER REFERENCES turns(id),
    kind                TEXT    NOT NULL,
    guild_id            INTEGER,
    author_id           INTEGER NOT NULL,
    prompt              TEXT    NOT NULL,
    options             TEXT    NOT NULL DEFAULT '{}',
    locale              TEXT    NOT NULL DEFAULT 'en-US',
    status              TEXT    NOT NULL
        CHECK (status IN ('queued', 'running', 'done', 'failed', 'cancelled')),
    response_id         TEXT,
    images              TEXT    NOT NULL DEFAULT '[]',
    message_ids         TEXT    NOT NULL DEFAULT '[]',
    progress_message_id INTEGER,
    source_message_id   INTEGER,
    revised_prompt      TEXT,
    text                TEXT,
    usage               TEXT    NOT NULL DEFAULT '{}',
    cost_usd            REAL    NOT NULL DEFAULT 0,
    image_count         INTEGER NOT NULL DEFAULT 0,
    error_kind          TEXT,
    error_detail        TEXT,
    rerooted            INTEGER NOT NULL DEFAULT 0,
    deleted             INTEGER NOT NULL DEFAULT 0,
    last_sequence       INTEGER,
    created_at          REAL    NOT NULL,
    started_at          REAL,
    finished_at         REAL
);
CREATE INDEX turns_by_conversation ON turns (conversation_id, id);
CREATE INDEX turns_by_status ON turns (status) WHERE status IN ('queued', 'running');
CREATE INDEX turns_by_author_day ON turns (author_id, created_at);
CREATE INDEX turns_by_guild_day ON turns (guild_id, created_at);

-- Which Discord message shows which turn: replies and buttons find their turn through it.
CREATE TABLE turn_messages (
    message_id INTEGER PRIMARY KEY,
    turn_id    INTEGER NOT NULL REFERENCES turns(id) ON DELETE CASCADE
);

-- Input images of a turn, kept so that a queued turn survives a restart and a reroll can resend them.
CREATE TABLE turn_inputs (
    turn_id  INTEGER NOT NULL REFERENCES turns(id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    mime     TEXT    NOT NULL,
    filename TEXT    NOT NULL,
    data     BLOB    NOT NULL,
    PRIMARY KEY (turn_id, position)
);

-- Per-server settings (JSON), bounded by the instance's environment.
CREATE TABLE guild_settings (
    guild_id INTEGER PRIMARY KEY,
    settings TEXT NOT NULL DEFAULT '{}',
    updated_at REAL NOT NULL
);

-- Small key/value facts about the instance (e.g. the hash of the last synced commands).
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
