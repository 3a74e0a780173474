-- Mirrors bot/store/migrations/0009_server_keys.sql: a server's own OpenAI key, encrypted with
-- Fernet; `failed` = it stopped working (401, insufficient quota) and must be replaced.
CREATE TABLE server_keys (
    guild_id   BIGINT           PRIMARY KEY,
    encrypted  TEXT             NOT NULL,
    failed     INTEGER          NOT NULL DEFAULT 0,
    updated_at DOUBLE PRECISION NOT NULL
);
