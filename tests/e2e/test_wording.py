"""What users read and click: pre-filled modals, Retry vs Reroll, Edit prompt on a failed or
blocked image, numbers that count within the conversation, Details in the reader's language."""

from __future__ import annotations

from tests.e2e.harness import (
    custom_ids,
    image_attachments,
    running,
    start_conversation,
    turn_rows,
    wait_results,
)
from tests.fakes.openai_server import Fault, read_lineage


def text_input(modal: dict) -> dict:
    return next(c for row in modal["components"] for c in row.get("components", [row])
                if c.get("type") == 4)


async def failure(fake, thread_id):
    return await fake.wait_for(
        lambda: next((m for m in fake.messages(thread_id) if "⚠️" in m.content), None), 10,
        what="the failure message",
    )


async def test_refine_is_prefilled_and_numbers_count_within_the_conversation(
    discord_fake, openai_fake, make_settings
):
    alice = discord_fake.add_user("alice")
    async with running(make_settings()):
        other = await start_conversation(discord_fake, alice, "a teapot")
        await wait_results(discord_fake, other, 1)
        thread_id = await start_conversation(discord_fake, alice, "a red fox in the snow")
        [first] = await wait_results(discord_fake, thread_id, 1)
        turn_id = turn_rows(make_settings().database_path)[1]["id"]
        assert turn_id == 2
        assert first.content.endswith("· #1")  # the first image of this conversation
        assert custom_ids(first)[0] == f"imagine:reroll:{turn_id}"
        click = await discord_fake.click(alice, first.id, f"imagine:refine:{turn_id}")
        submitted = await discord_fake.submit_modal(
            alice, click, {"instruction": "a red fox in the snow at night"}
        )
        assert submitted
        [_, second] = await wait_results(discord_fake, thread_id, 2)
    field = text_input(click.modal)
    assert field["value"] == "a red fox in the snow"  # pre-filled: a small change is a small edit
    assert second.content.endswith("· #2")
    assert read_lineage(image_attachments(second)[0].data) == [
        "a red fox in the snow", "a red fox in the snow at night",
    ]


async def test_a_failed_image_offers_retry_and_edit_a_blocked_one_edit_only(
    discord_fake, openai_fake, make_settings
):
    alice = discord_fake.add_user("alice")
    async with running(make_settings(retry_max_attempts=0)):
        openai_fake.add_fault(Fault.server_error())
        busy = await start_conversation(discord_fake, alice, "a lantern")
        failed = await failure(discord_fake, busy)
        openai_fake.add_fault(Fault.moderation("http"))
        blocked_thread = await start_conversation(discord_fake, alice, "something blocked")
        blocked = await failure(discord_fake, blocked_thread)
        rows = turn_rows(make_settings().database_path)
        assert custom_ids(failed) == [f"imagine:retry:{rows[0]['id']}", f"imagine:edit:{rows[0]['id']}"]
        assert custom_ids(blocked) == [f"imagine:edit:{rows[1]['id']}"]
        labels = [c["label"] for row in failed.components for c in row["components"]]
        assert labels == ["Retry", "Edit prompt"]
        click = await discord_fake.click(alice, blocked.id, f"imagine:edit:{rows[1]['id']}")
        await discord_fake.submit_modal(alice, click, {"instruction": "a harmless lantern"})
        [fixed] = await wait_results(discord_fake, blocked_thread, 1)
    assert text_input(click.modal)["value"] == "something blocked"
    assert click.modal["title"] == "Edit the prompt"
    assert read_lineage(image_attachments(fixed)[0].data) == ["a harmless lantern"]


async def test_details_in_chinese(discord_fake, openai_fake, make_settings):
    li = discord_fake.add_user("li", locale="zh-CN")
    async with running(make_settings()):
        thread_id = await start_conversation(discord_fake, li, "一只狐狸", quality="low")
        [result] = await wait_results(discord_fake, thread_id, 1)
        turn_id = turn_rows(make_settings().database_path)[0]["id"]
        click = await discord_fake.click(li, result.id, f"imagine:details:{turn_id}", locale="zh-CN")
        details = await discord_fake.wait_for(
            lambda: next((m for m in click.messages() if m.embeds), None), 10, what="details",
        )
    embed = details.embeds[0]
    fields = {f["name"]: f["value"] for f in embed["fields"]}
    assert embed["title"] == "本对话的第 1 张图片"
    assert fields["状态"] == "已完成"
    assert "低质量" in fields["设置"]
    assert "词元" in " ".join(fields)
