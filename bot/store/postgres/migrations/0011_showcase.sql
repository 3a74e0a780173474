-- Mirrors bot/store/migrations/0011_showcase.sql: results published to a server's showcase,
-- one post per turn (`published_by` 0 = published by its ⭐ reactions).
CREATE TABLE showcase_posts (
    turn_id      BIGINT           PRIMARY KEY,
    guild_id     BIGINT           NOT NULL,
    channel_id   BIGINT           NOT NULL,
    post_id      BIGINT           NOT NULL,
    author_id    BIGINT           NOT NULL,
    published_by BIGINT           NOT NULL,
    created_at   DOUBLE PRECISION NOT NULL
);
CREATE INDEX showcase_posts_post ON showcase_posts (post_id);
