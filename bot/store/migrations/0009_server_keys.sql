-- A server's own OpenAI key (set by its managers when KEY_ENCRYPTION_SECRET is set), encrypted
-- with Fernet; `failed` = the key stopped working (401, insufficient quota) and must be replaced.
CREATE TABLE server_keys (
    guild_id   INTEGER PRIMARY KEY,
    encrypted  TEXT    NOT NULL,
    failed     INTEGER NOT NULL DEFAULT 0,
    updated_at REAL    NOT NULL
);
