"""The soak's routes on the fake Discord's control port (``python -m bench.soak``).

Mounted by ``bench/fake_discord.py`` beside its own routes; the test fake itself is unchanged.
The soak sends one turn at a time at a steady rate, so unlike ``POST /imagine`` (every user at
once) these routes act for one user:

* ``POST /soak/imagine`` ``{"user": i, "prompt": s}``: user *i* runs ``/imagine prompt:s`` in
  the text channel of their server; answers ``{"interaction_id"}``;
* ``POST /soak/reply`` ``{"user": i, "thread_id", "content"}``: user *i* writes ``content`` in
  a thread (a refinement turn); answers ``{"message_id"}``;
* ``POST /soak/progress`` ``{"interactions": [...], "threads": [...]}``: the thread each of
  those interactions opened (``null`` while none), and the turn numbers each of those threads
  shows a result for, so the soak knows who is idle without asking for everything;
* ``GET /soak/results``: every interaction the soak dispatched (dispatched, acknowledged,
  errors, thread) and every result message in every thread (turn number, when it first carried
  its image, message id). Times are ``time.time()`` of this process.

A result is a message of the bot with an image attachment that is not a live preview
(``preview*``) nor a history sheet (``history-*``), as ``tests/e2e/harness.py`` reads them; its
turn number is the ``· #N`` at the end of its footer (``bot/ui/render.py``).
"""

from __future__ import annotations

import json
import re
from typing import Any

from aiohttp import web

from tests.fakes.discord_models import FakeAttachment, FakeMessage
from tests.fakes.discord_server import FakeDiscord

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".gif")
FOOTER_TURN = re.compile(r"· #(\d+)\s*$", re.MULTILINE)


def _is_result_image(attachment: FakeAttachment) -> bool:
    name = attachment.filename.lower()
    return name.endswith(IMAGE_EXTENSIONS) and not name.startswith(("preview", "history-"))


def _shown_at(msg: FakeMessage) -> float:
    """When the message first carried a result image: its creation, or the edit that added it
    (each earlier version is kept with the time it was itself edited, None for the original)."""
    versions = [(v.attachments, v.edited_at) for v in msg.edits] + [(msg.attachments, msg.edited_at)]
    for attachments, at in versions:
        if any(_is_result_image(a) for a in attachments):
            return at if at is not None else msg.created_at
    return msg.edited_at or msg.created_at


class SoakState:
    """The interactions the soak dispatched, and the results the threads show."""

    def __init__(self, fake: FakeDiscord, users: list[tuple[dict[str, Any], int]]) -> None:
        self.fake = fake
        self.users = users
        self.interactions: list[int] = []
        self.replies: list[int] = []

    def thread_of(self, iid: int) -> int | None:
        inter = self.fake.interactions.get(iid)
        if inter is None or inter.original is None:
            return None
        return inter.original.id if inter.original.id in self.fake.threads else None

    def results_in(self, thread_id: int) -> list[dict[str, Any]]:
        bot_id = int(self.fake.bot_user["id"])
        rows = []
        for msg in self.fake.messages(thread_id):
            if msg.deleted or int(msg.author["id"]) != bot_id:
                continue
            if not any(_is_result_image(a) for a in msg.attachments):
                continue
            numbers = [int(n) for n in FOOTER_TURN.findall(msg.content)]
            rows.append({"message_id": str(msg.id), "number": numbers[-1] if numbers else None,
                         "at": _shown_at(msg)})
        return rows

    def progress(self, interactions: list[str], threads: list[str]) -> dict[str, Any]:
        return {
            "threads_of": {iid: (str(t) if (t := self.thread_of(int(iid))) else None)
                           for iid in interactions},
            "shown": {tid: sorted({r["number"] for r in self.results_in(int(tid))
                                   if r["number"] is not None}) for tid in threads},
        }

    def results(self) -> dict[str, Any]:
        rows = {}
        threads: set[int] = set()
        for iid in self.interactions:
            inter = self.fake.interactions[iid]
            thread = self.thread_of(iid)
            if thread is not None:
                threads.add(thread)
            rows[str(iid)] = {"dispatched": inter.created_at, "acked": inter.acked_at,
                              "response_type": inter.response_type, "errors": list(inter.errors),
                              "thread_id": str(thread) if thread else None}
        return {"interactions": rows,
                "threads": {str(t): self.results_in(t) for t in sorted(threads)},
                "replies": len(self.replies), "requests": len(self.fake.request_log)}


def _reply(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=json.dumps(data).encode(), status=status,
                        content_type="application/json")


def add_soak_routes(control: web.Application, fake: FakeDiscord,
                    users: list[tuple[dict[str, Any], int]]) -> None:
    """Mount the soak's routes on the fake Discord's control app."""
    state = SoakState(fake, users)

    async def imagine(request: web.Request) -> web.Response:
        body = await request.json()
        user, channel = users[int(body["user"])]
        try:
            inter = await fake.slash(user, channel, "imagine", {"prompt": body["prompt"]})
        except Exception as exc:  # report, don't crash the fake
            return _reply({"error": f"{type(exc).__name__}: {exc}"}, 400)
        state.interactions.append(inter.id)
        return _reply({"interaction_id": str(inter.id), "at": inter.created_at})

    async def reply(request: web.Request) -> web.Response:
        body = await request.json()
        user, _ = users[int(body["user"])]
        try:
            said = await fake.say(user, int(body["thread_id"]), body["content"])
        except Exception as exc:
            return _reply({"error": f"{type(exc).__name__}: {exc}"}, 400)
        state.replies.append(int(said["id"]))
        return _reply({"message_id": said["id"]})

    async def progress(request: web.Request) -> web.Response:
        body = await request.json()
        return _reply(state.progress(body.get("interactions", []), body.get("threads", [])))

    async def results(request: web.Request) -> web.Response:
        return _reply(state.results())

    control.router.add_post("/soak/imagine", imagine)
    control.router.add_post("/soak/reply", reply)
    control.router.add_post("/soak/progress", progress)
    control.router.add_get("/soak/results", results)
