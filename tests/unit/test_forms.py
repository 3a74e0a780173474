"""Forms (modals) with their own ids: discord.py keeps each open form in its `ViewStore` keyed by
the form's custom_id until it is submitted or times out. Two open copies of one form must not
share a key, and a form nobody submits must leave the store."""

from __future__ import annotations

import asyncio

from discord.ui.view import ViewStore

from bot.ui.buttons import FORM_TIMEOUT, RefineModal
from bot.ui.remix_modal import RemixModal, RemixSource


async def test_two_open_copies_of_a_form_are_kept_apart() -> None:
    store = ViewStore(None)  # type: ignore[arg-type]  # (the state is not used for forms)
    source = RemixSource(channel_id=1, message_id=2, jump_url="", turn_id=3)
    forms = [RefineModal(None, 7, "en-US"), RefineModal(None, 7, "en-US", mode="edit"),
             RefineModal(None, 7, "en-US"), RemixModal(None, source, "", "en-US"),
             RemixModal(None, source, "", "en-US")]
    for form in forms:
        store.add_view(form)
    assert len({form.custom_id for form in forms}) == 5
    assert len(store._modals) == 5  # each submission reaches its own form
    for form in forms:
        form.stop()
    assert store._modals == {}


async def test_a_form_nobody_submits_is_forgotten() -> None:
    assert 0 < FORM_TIMEOUT <= 3600
    store = ViewStore(None)  # type: ignore[arg-type]
    form = RefineModal(None, 7, "en-US")
    assert form.timeout == FORM_TIMEOUT
    form.timeout = 0.1  # (as if FORM_TIMEOUT had passed)
    store.add_view(form)
    assert form.custom_id in store._modals
    await asyncio.wait_for(form.wait(), 5)  # True: timed out
    assert store._modals == {}
