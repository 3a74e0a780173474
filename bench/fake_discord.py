"""The fake Discord (``tests.fakes.discord_server.FakeDiscord``) as a benchmark process.

``python -m bench.fake_discord --users N [--guilds 2] [--ack-deadline 3]`` prints
``READY <api_base> <gateway_url> <control_url>`` and serves until SIGTERM.

It is the test fake, unchanged, with the users created before any bot connects (so the bot sees
them in GUILD_CREATE), plus a small control server on a second port that the fake's own
``/_control`` API does not offer. With ``--guilds 2`` (the fleet run) there is a second server,
on the other shard of two (``(guild_id >> 22) % 2``), and the users alternate between the two:
each bot process of a two-shard fleet receives the interactions of its own server.

* ``POST /imagine`` ``{"name", "options", "prompt_format"}`` dispatches one slash command per user
  (in the text channel of the user's server) in a single loop iteration, so N users really press
  enter at the same moment;
* ``GET /status`` counts finished turns from the request log (cheap, incremental);
* ``GET /results`` lists, per interaction: when the fake dispatched INTERACTION_CREATE, when the
  bot acknowledged it, errors, and when the request carrying the final image attachment was
  received (after its body was read). Times are ``time.time()`` of this process, as the fake
  records them.
* ``/soak/...``: one user's turn at a time, for ``python -m bench.soak`` (``bench/soak_control.py``).

A turn is finished when a successful POST/PATCH of the bot carries an image file whose name
does not start with ``preview`` (the bot's live previews are ``preview.jpg``). It is mapped to
its interaction by the webhook token (followups, baseline bot) or by the thread the bot opened
from the interaction's original response (thread id == message id).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Any

from aiohttp import web

from bench.soak_control import add_soak_routes
from tests.fakes.discord_server import FakeDiscord, FakeGuild
from tests.fakes.serving import serve_control_until_signalled

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".gif")


class Tracker:
    """Finds finished turns in the fake's request log, incrementally."""

    def __init__(self, fake: FakeDiscord) -> None:
        self.fake = fake
        self.scanned = 0
        self.pending: list[Any] = []  # records whose handler has not finished yet
        self.done: dict[int, dict[str, Any]] = {}  # interaction id -> completion
        self.unmatched: list[dict[str, Any]] = []
        self.batch: list[int] = []  # interaction ids of the current run
        self.batch_started = 0.0
        self.log_start = 0

    def _interaction_for(self, path: str) -> Any:
        parts = path.strip("/").split("/")
        fake = self.fake
        if parts[0] == "webhooks" and len(parts) >= 3:
            return fake.interactions_by_token.get(parts[2])
        if parts[0] == "channels" and len(parts) >= 2 and parts[1].isdigit():
            channel_id = int(parts[1])  # a thread opened from the interaction's original reply
            for inter in fake.interactions.values():
                if inter.original is not None and inter.original.id == channel_id:
                    return inter
        return None

    def scan(self) -> None:
        log = self.fake.request_log
        while self.scanned < len(log):
            self.pending.append(log[self.scanned])
            self.scanned += 1
        still: list[Any] = []
        for record in self.pending:
            if record.status is None:
                still.append(record)
                continue
            if record.method not in ("POST", "PATCH") or record.status >= 300:
                continue
            finals = [
                f for f in record.files
                if f.filename.lower().endswith(IMAGE_EXTENSIONS)
                and not f.filename.lower().startswith("preview")
            ]
            if not finals:
                continue
            inter = self._interaction_for(record.path)
            info = {
                "at": record.time,
                "path": record.path,
                "files": [f.filename for f in finals],
                "bytes": sum(len(f.data) for f in finals),
            }
            if inter is None:
                self.unmatched.append(info)
            elif inter.id not in self.done:
                self.done[inter.id] = info
        self.pending = still

    def status(self) -> dict[str, Any]:
        self.scan()
        batch = set(self.batch)
        done = [self.done[i] for i in self.batch if i in self.done]
        errors = sum(1 for i in self.batch if self.fake.interactions[i].errors)
        return {
            "n": len(batch),
            "done": len(done),
            "errored": errors,
            "last_done": max((d["at"] for d in done), default=None),
            "unmatched": len(self.unmatched),
        }

    def results(self) -> dict[str, Any]:
        self.scan()
        fake = self.fake
        rows = self._rows()
        window = fake.request_log[self.log_start:]
        timelines = self._timelines(window)
        return {
            "turns": rows,
            "requests": len(window),
            "requests_by_route": _by_route(window),
            "unmatched": self.unmatched,
            "threads": len(fake.threads),
            "steps": self._steps(timelines),
            "timeline_examples": self._examples(rows, timelines),
        }

    def _rows(self) -> list[dict[str, Any]]:
        """One row per interaction of the batch: when it was dispatched, acked and shown."""
        rows = []
        for iid in self.batch:
            inter = self.fake.interactions[iid]
            done = self.done.get(iid)
            rows.append({
                "interaction_id": str(iid),
                "user_id": str(inter.user_id),
                "prompt": next(
                    (o.get("value") for o in inter.data.get("options", [])
                     if o.get("name") == "prompt"), None,
                ),
                "dispatched": inter.created_at,
                "acked": inter.acked_at,
                "response_type": inter.response_type,
                "errors": list(inter.errors),
                "done": done["at"] if done else None,
                "files": done["files"] if done else [],
                "bytes": done["bytes"] if done else 0,
            })
        return rows

    def _steps(self, timelines: dict[int, list[tuple[float, str, str, Any]]]) -> dict[str, Any]:
        """The n-th request of each route, seconds after dispatch: count, p50, max, first."""
        steps: dict[str, list[float]] = {}
        for iid, events in timelines.items():
            seen: dict[str, int] = {}
            start = self.fake.interactions[iid].created_at
            for at, method, route, _status in events:
                key = f"{method} {route}"
                seen[key] = seen.get(key, 0) + 1
                steps.setdefault(f"{key} #{seen[key]}", []).append(at - start)
        summary = {}
        for key, values in steps.items():
            values.sort()
            summary[key] = {
                "count": len(values),
                "p50_s": round(values[len(values) // 2], 3),
                "max_s": round(values[-1], 3),
                "first_s": round(values[0], 3),
            }
        return dict(sorted(summary.items(), key=lambda kv: kv[1]["p50_s"]))

    def _examples(
        self, rows: list[dict[str, Any]], timelines: dict[int, list[tuple[float, str, str, Any]]]
    ) -> dict[str, Any]:
        """The REST timeline of the fastest, the median and the slowest finished turn."""
        ordered = sorted(
            (r for r in rows if r["done"] is not None), key=lambda r: r["done"] - r["dispatched"]
        )
        examples = {}
        if ordered:
            for label, row in (("fastest", ordered[0]), ("median", ordered[len(ordered) // 2]),
                               ("slowest", ordered[-1])):
                iid = int(row["interaction_id"])
                start = self.fake.interactions[iid].created_at
                examples[label] = [
                    [round(at - start, 3), method, route, status]
                    for at, method, route, status in timelines.get(iid, [])
                ]
        return examples

    def _timelines(self, window: list[Any]) -> dict[int, list[tuple[float, str, str, Any]]]:
        """Each batch interaction's REST requests: (time, method, route template, status)."""
        fake = self.fake
        batch = set(self.batch)
        by_original = {
            inter.original.id: iid for iid in batch
            if (inter := fake.interactions[iid]).original is not None
        }
        by_token = {fake.interactions[iid].token: iid for iid in batch}
        out: dict[int, list[tuple[float, str, str, Any]]] = {}
        for record in window:
            parts = record.path.strip("/").split("/")
            iid = None
            if parts[0] in ("interactions", "webhooks") and len(parts) >= 3:
                iid = by_token.get(parts[2])
            elif parts[0] == "channels" and len(parts) >= 2 and parts[1].isdigit():
                iid = by_original.get(int(parts[1]))
                if iid is None and len(parts) >= 4 and parts[3].isdigit():
                    iid = by_original.get(int(parts[3]))
            if iid is None:
                continue
            route = "/" + "/".join(
                p if not (p.isdigit() or len(p) >= 40) else "{}" for p in parts
            )
            out.setdefault(iid, []).append((record.time, record.method, route, record.status))
        return out


def _by_route(window: list[Any]) -> dict[str, int]:
    """Requests per route template (ids as `{}`), most used first."""
    by_route: dict[str, int] = {}
    for record in window:
        parts = record.path.strip("/").split("/")
        key = record.method + " /" + "/".join(
            p if not p.isdigit() and len(p) < 40 else "{}" for p in parts[:5]
        )
        by_route[key] = by_route.get(key, 0) + 1
    return dict(sorted(by_route.items(), key=lambda kv: -kv[1]))


async def _serve(args: argparse.Namespace) -> None:
    fake = FakeDiscord(
        host="127.0.0.1", port=args.port, ack_deadline=args.ack_deadline,
        token_lifetime=args.token_lifetime, max_active_threads=max(1000, args.users * 2),
    )
    await fake.start()
    guilds = _guilds(fake, args.guilds)
    users = [
        (fake.add_user(f"bench-user-{i:04d}", guild_id=guilds[i % len(guilds)].id),
         guilds[i % len(guilds)].text_channel_id)
        for i in range(args.users)
    ]
    control = _control_app(fake, users, Tracker(fake))
    await serve_control_until_signalled(control, f"{fake.api_base} {fake.gateway_url}", fake.stop)


def _guilds(fake: FakeDiscord, count: int) -> list[FakeGuild]:
    """The default server, and with ``count`` 2 one more on the other of two shards."""
    if count not in (1, 2):
        raise SystemExit("--guilds is 1 or 2")
    guilds = [fake.guild]
    if count == 2:
        guilds.append(fake.add_guild("Bench Guild 2", shard=(1 - fake.guild.shard(2), 2)))
    return guilds


def _reply(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=json.dumps(data).encode(), status=status, content_type="application/json")


def _control_app(
    fake: FakeDiscord, users: list[tuple[dict[str, Any], int]], tracker: Tracker
) -> web.Application:
    """The control port: state, dispatch all /imagine at once, progress, per-turn results."""

    async def state(request: web.Request) -> web.Response:
        return _reply({
            "connected": fake.connected,
            "sessions": len(fake.sessions),
            "commands": sorted(
                {c["name"] for scope in fake.commands.values() for c in scope}
            ),
            "text_channel_id": str(fake.text_channel_id),
            "guilds": {str(g.id): str(g.text_channel_id) for g in fake.guilds.values()},
            "users": [u["id"] for u, _ in users],
        })

    async def imagine(request: web.Request) -> web.Response:
        body = await request.json()
        name = body.get("name", "imagine")
        options = body.get("options") or {}
        fmt = body.get("prompt_format", "bench turn {i}")
        count = int(body.get("count", len(users)))
        tracker.scan()
        tracker.log_start = len(fake.request_log)
        tracker.batch = []
        tracker.batch_started = time.time()
        errors = []
        for i, (user, channel) in enumerate(users[:count]):  # no await between dispatches
            try:
                inter = await fake.slash(user, channel, name, {"prompt": fmt.format(i=i), **options})
                tracker.batch.append(inter.id)
            except Exception as exc:  # report, don't crash the fake
                errors.append(f"{type(exc).__name__}: {exc}")
        return _reply({
            "dispatched": len(tracker.batch),
            "started": tracker.batch_started,
            "finished": time.time(),
            "errors": errors[:5],
        }, 200 if not errors else 400)

    async def status(request: web.Request) -> web.Response:
        return _reply(tracker.status())

    async def results(request: web.Request) -> web.Response:
        return _reply(tracker.results())

    control = web.Application()
    control.router.add_get("/state", state)
    control.router.add_post("/imagine", imagine)
    control.router.add_get("/status", status)
    control.router.add_get("/results", results)
    add_soak_routes(control, fake, users)  # one turn at a time, for bench.soak
    return control


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="fake Discord for the benchmark")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--users", type=int, default=1)
    parser.add_argument("--guilds", type=int, default=1,
                        help="servers: 1, or 2 (one on each shard of two; users alternate)")
    parser.add_argument("--ack-deadline", type=float, default=3.0)
    parser.add_argument("--token-lifetime", type=float, default=900.0)
    asyncio.run(_serve(parser.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
