"""The SQL of the fleet-wide queue (PostgreSQL only): what a claim reads and writes, the
snapshot of the fleet's unfinished turns, queue positions, leases and wake-ups.

Statements use the store's `?` placeholders (`PostgresDatabase` turns them into `$n`).
"""

from __future__ import annotations

TURNS_CHANNEL = "imagine_turns"
CANCEL_CHANNEL = "imagine_cancel"
MOVED_CHANNEL = "imagine_moved"  # a waiting turn left the queue: positions changed

NOW = "extract(epoch FROM now())::float8"

# A turn whose progress message its process is still posting (its image is asked for first, by
# that process) is left to that process, unless it has been waiting a whole lease (the process
# may have died before posting it). Parameters: this process's waiting turns, the lease.
_PLACED = ("({t}progress_message_id IS NOT NULL OR {t}id = ANY(?::bigint[]) "
           f"OR {{t}}created_at < {NOW} - ?)")

# The running turns under a live lease, and how many each user has: counted once per statement
# and joined (not counted again for every waiting turn, which grows with running x waiting).
_LIVE = f"""live AS (
    SELECT t.author_id FROM turns t JOIN fleet_leases l ON l.turn_id = t.id
    WHERE t.status = 'running' AND l.lease_until > {NOW}
), live_users AS (
    SELECT author_id, count(*) AS n FROM live GROUP BY author_id
)"""
_CANDIDATES = """turns t
LEFT JOIN fleet_leases l ON l.turn_id = t.id
LEFT JOIN live_users lu ON lu.author_id = t.author_id"""

# The turns this process may start now. A thread's turns run in order, except that variants
# asked for together (one variant_group) run side by side; the thread's next turn waits for the
# whole set. Parameters: the fleet-wide limit, the user's running limit, then `_PLACED`'s.
_STARTABLE = f"""(t.status = 'queued'
       OR (t.status = 'running' AND (l.lease_until IS NULL OR l.lease_until <= {NOW})))
  AND (SELECT count(*) FROM live) < ?
  AND NOT EXISTS (
      SELECT 1 FROM turns e WHERE e.conversation_id = t.conversation_id AND e.id < t.id
      AND e.status IN ('queued', 'running')
      AND (t.variant_group IS NULL OR e.variant_group IS DISTINCT FROM t.variant_group))
  AND COALESCE(lu.n, 0) < ?
  AND (t.status = 'running' OR {_PLACED.format(t="t.")})"""

# The next startable turns by the fairness rule, at most one per user (a claimed user goes last
# in the round, so the first claims of a run of single claims are each user's first turn, in
# this order), as many as the fleet-wide limit leaves room for and at most the batch asked for;
# with each, its user's unfinished turns (for OVERFLOW). Parameters: `_STARTABLE`'s, the batch,
# the fleet-wide limit.
CLAIM = f"""
WITH {_LIVE}, firsts AS (
    SELECT t.id, row_number() OVER (
        PARTITION BY t.author_id ORDER BY t.status = 'running' DESC, t.id) AS nth
    FROM {_CANDIDATES}
    WHERE {_STARTABLE}
)
SELECT t.id, t.author_id, t.conversation_id, t.guild_id, t.status, t.reserved_usd, t.own_key,
       t.exempt,
       (SELECT count(*) FROM turns u
        WHERE u.author_id = t.author_id AND u.status IN ('queued', 'running')) AS unfinished
FROM turns t
JOIN firsts f ON f.id = t.id AND f.nth = 1
LEFT JOIN fleet_served s ON s.user_id = t.author_id
ORDER BY t.status = 'running' DESC, COALESCE(s.served, 0), t.id
LIMIT GREATEST(0, LEAST(?, ? - (SELECT count(*) FROM live)))
FOR UPDATE OF t SKIP LOCKED
"""

# What `has_room_for`, `has_conversation` and `queued` read (the fleet's unfinished turns, as
# two arrays in one row: decoded in C, not row by row), and whether a claim could start a turn
# now: when not, the claim loop does not try (a turn that becomes startable later comes with a
# wake-up: it was submitted, a slot or its thread was freed, or its lease ran out), except for
# the turns other processes are still posting: their posting sends no wake-up, so while there
# are some the loop looks again every POSTING_RECHECK seconds.
SNAPSHOT = f"""
WITH {_LIVE}
SELECT COALESCE(array_agg(author_id), '{{}}') AS authors,
       COALESCE(array_agg(conversation_id), '{{}}') AS conversations,
       count(*) FILTER (WHERE status = 'queued') AS queued,
       count(*) FILTER (WHERE status = 'queued' AND progress_message_id IS NULL
                        AND NOT id = ANY(?::bigint[])) AS posting_elsewhere,
       EXISTS (SELECT 1 FROM {_CANDIDATES} WHERE {_STARTABLE}) AS startable
FROM turns WHERE status IN ('queued', 'running')
"""

# A user's waiting turns beyond their queue room (admitted at the same moment by two processes)
# are refused, the last admitted first: what admitting them one after the other would have done.
# (It can cut nothing when the user has no more unfinished turns than the room: CLAIM's
# `unfinished` says so, and the claim then skips it.)
OVERFLOW = f"""
UPDATE turns SET status = 'failed', error_kind = 'queue_full', error_detail = ?,
       finished_at = {NOW}
WHERE status = 'queued' AND id IN (
    SELECT id FROM turns WHERE author_id = ? AND status IN ('queued', 'running')
    ORDER BY id OFFSET ?)
  AND {_PLACED.format(t="")}
RETURNING id, author_id, conversation_id
"""
# Queue positions, in the order CLAIM would start the waiting turns if each ran alone (as the
# in-process scheduler ranks them): a user's n-th waiting turn comes in round n; within a round,
# the least recently served user first, then the user whose waiting began first.
POSITIONS = """
WITH q AS (
    SELECT t.id, COALESCE(s.served, 0) AS served,
           row_number() OVER (PARTITION BY t.author_id ORDER BY t.id) AS round,
           min(t.id) OVER (PARTITION BY t.author_id) AS arrived
    FROM turns t LEFT JOIN fleet_served s ON s.user_id = t.author_id
    WHERE t.status = 'queued'
)
SELECT id, position FROM (
    SELECT id, row_number() OVER (ORDER BY round, served, arrived, id) AS position FROM q
) ranked WHERE id = ANY(?::bigint[])
"""
# The claimed turn runs under this process's lease, its user goes last in the round, and every
# process learns that the queue moved (delivered on commit): one statement, one round trip.
# (Data-modifying WITH clauses all run, referenced or not.)
TAKE = f"""
WITH run AS (
    UPDATE turns SET status = 'running', started_at = COALESCE(started_at, {NOW})
    WHERE id = ? RETURNING id
), lease AS (
    INSERT INTO fleet_leases (turn_id, owner, lease_until) VALUES (?, ?, {NOW} + ?)
    ON CONFLICT (turn_id) DO UPDATE SET owner = excluded.owner, lease_until = excluded.lease_until
), served AS (
    INSERT INTO fleet_served (user_id, served) VALUES (?, nextval('fleet_serve_seq'))
    ON CONFLICT (user_id) DO UPDATE SET served = excluded.served
)
SELECT pg_notify('{MOVED_CHANNEL}', '') FROM run
"""
REFUSE = f"""
UPDATE turns SET status = 'failed', error_kind = ?, error_detail = ?, finished_at = {NOW}
WHERE id = ?
"""
REFUSED_DETAIL = "refused when claimed: admitted past a limit by two processes at once"

# A withdrawal meets a claim on the turn's row lock (CLAIM skips a row being withdrawn).
WITHDRAWN = f"""
SELECT t.status, l.owner, l.lease_until > {NOW} AS live FROM turns t
LEFT JOIN fleet_leases l ON l.turn_id = t.id WHERE t.id = ? FOR UPDATE OF t
"""
CANCEL = "UPDATE turns SET status = 'cancelled' WHERE id = ?"
NOTIFY = "SELECT pg_notify(?, ?)"
# The lease given back and the fleet woken (a slot is free): one statement, one round trip.
RELEASE = ("WITH gone AS (DELETE FROM fleet_leases WHERE turn_id = ? AND owner = ?) "
           "SELECT pg_notify(?, ?)")
RENEW = f"""
UPDATE fleet_leases SET lease_until = {NOW} + ?
WHERE owner = ? AND turn_id = ANY(?::bigint[]) RETURNING turn_id
"""
