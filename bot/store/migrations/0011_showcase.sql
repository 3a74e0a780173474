-- Results published to a server's showcase (a forum or media channel): one post per turn.
-- `post_id` is the post's thread (its first message has the same id); `published_by` is the
-- member who published it, 0 when its ⭐ reactions did.
CREATE TABLE showcase_posts (
    turn_id      INTEGER PRIMARY KEY,
    guild_id     INTEGER NOT NULL,
    channel_id   INTEGER NOT NULL,
    post_id      INTEGER NOT NULL,
    author_id    INTEGER NOT NULL,
    published_by INTEGER NOT NULL,
    created_at   REAL    NOT NULL
);
CREATE INDEX showcase_posts_post ON showcase_posts (post_id);
