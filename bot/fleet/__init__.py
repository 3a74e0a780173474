"""The fleet-wide queue (`FLEET_QUEUE=true`): every process of a fleet claims turns from
PostgreSQL. An adapter of the core's `bot.core.jobs.Scheduler`, wired by `bot.app`.

Turns are rows. A process claims the next turn in one transaction: the fairness rule of
`bot.core.jobs` in `ORDER BY` (least recently served user first, then arrival; a thread's turns
strictly in order), `MAX_CONCURRENT_GENERATIONS` counted over the whole fleet and the user's
running limit checked in the same statement, `FOR UPDATE SKIP LOCKED`. Claims are serialised with
each other by an advisory lock of their own (`CLAIM_LOCK`), not with the store's other
transactions (see `Claims.claim` for why that is enough). A claim is five round trips: BEGIN with the
lock, CLAIM, the limits' reads, TAKE (the turn, its lease, its user's place in the round and the
wake-up in one statement), COMMIT.
Admission checks limits inside one process, so two processes admitting at once can pass one; the
claim checks them again in its transaction (the refusal check the app gives the scheduler,
`bot.core.claim_limits.ClaimLimits.refusal`: spend caps and daily images for the claimed turn;
and the user's queue room, as a cut of their latest admitted turns), and a turn
that no longer fits is refused there: recorded failed (its reservation released), shown to its
author with admission's message, never sent to the API.

A claimed turn holds a lease (`fleet_leases.lease_until`) that its process renews while it runs.
When a process dies its leases run out and another process claims the turn again; the service then
resumes the generation by its stored response id instead of generating a second time.
Idle processes sleep until `NOTIFY imagine_turns` (a turn was queued or a slot freed), waking at
least every half lease to look for expired leases. A dropped LISTEN connection is reconnected
(backing off up to 30 s); meanwhile the half-lease wake-ups keep the queue going, slowly.
Each process tells its own waiting turns their fleet-wide place (`POSITIONS`, CLAIM's order) after
every look at the queue and on `NOTIFY imagine_moved` (a turn left the queue somewhere).

The modules: `sql.py` (the statements), `claims.py` (running them: claim, snapshot, withdraw,
positions), `listener.py` (the LISTEN connection and its reconnection), `leases.py` (renewing and
giving back leases), `positions.py` (telling waiting turns their places), `scheduler.py` (the
`FleetScheduler` that the core drives).
"""

from bot.fleet.claims import RefusalCheck
from bot.fleet.scheduler import FleetScheduler

__all__ = ["FleetScheduler", "RefusalCheck"]
