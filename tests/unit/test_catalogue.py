"""Every string a user sees is in the catalogue in both languages: the English catalogue is walked
for keys missing in Chinese, and every user-facing path is rendered in zh-CN and checked for
sentences left in English."""

from __future__ import annotations

import dataclasses
import re

import discord
import pytest

from bot.core.accounts import Allowance
from bot.core.errors import ErrorKind, UserFacingError
from bot.core.models import Progress, Stage, Turn, TurnKind, TurnStatus, UserPrefs
from bot.core.options import ImageOptions
from bot.core.policy import Ceilings, EffectivePolicy, GuildPolicy
from bot.ui.channel_rules import stored_rules_text
from bot.ui.help_text import limit_lines
from bot.ui.i18n import EN, ZH, plural, t
from bot.ui.member_text import allowance_lines, prefs_text, progress_lines
from bot.ui.render import (
    error_text,
    failure_text,
    options_summary,
    permission_name,
    ping_text,
    progress_text,
    result_caption,
)
from bot.ui.settings_text import format_settings

ZH_CN = "zh-CN"
# What may stay ASCII inside a Chinese sentence: markup, mentions, timestamps, code, numbers,
# sizes, money, and the names of file formats.
_NEUTRAL = re.compile(
    r"<[@#][!&]?\d+>|<t:\d+:\w>|</[\w -]+:\d+>|`[^`]*`|\$?\d[\d.,x]*|\b(png|jpeg|webp|gif|PNG|"
    r"JPEG|WebP|GIF|MB|USD|URL|ID)\b|violence|https?://\S+"
)

TURN = Turn(
    id=41, conversation_id=900, parent_id=40, kind=TurnKind.reply, guild_id=1, author_id=42,
    prompt="a fox in the snow", status=TurnStatus.running, locale=ZH_CN, number=2,
    options=ImageOptions(action="edit", size="1536x1024", quality="high", output_format="webp",
                         background="transparent", compression=80, moderation="low"),
)

PARAMS = {
    "length": 5000, "limit": 4000, "value": "9999x9999", "option": "quality", "name": "cat.png",
    "limit_mb": 20, "reason": "bad things", "text": "no", "category": "violence",
    "reset": 1_900_000_000, "permission": "Attach Files", "model": "gpt-image-1",
}


def english_left(text: str) -> list[str]:
    """Lines of `text` (other than quoted prompts) that read as English: letters, no Chinese."""
    bad = []
    for line in text.splitlines():
        if line.startswith(">"):
            continue  # the user's own prompt
        rest = _NEUTRAL.sub("", line)
        if re.search(r"[A-Za-z]{2,}", rest) and not re.search(r"[^\x00-\x7f]", rest):
            bad.append(line)
    return bad


def error_samples() -> list[UserFacingError]:
    samples = []
    for kind in ErrorKind:
        extra = {"reason": "blocked"} if kind is ErrorKind.not_allowed else {}
        samples.append(UserFacingError(
            kind, **{k: v for k, v in PARAMS.items() if k != "reason"}, **extra
        ))
    for key in EN:
        prefix, _, name = key.partition(".")
        if prefix == "problem":
            samples.append(UserFacingError(ErrorKind.invalid_options, problem=name, **PARAMS))
        elif prefix == "reason":
            samples.append(UserFacingError(ErrorKind.not_allowed, reason=name))
        elif prefix == "limit":
            samples.append(UserFacingError(ErrorKind.limit_reached, limit=name, value=5,
                                           reset=1_900_000_000))
    return samples


def test_every_english_key_has_a_chinese_text():
    missing = [key for key in EN if not ZH.get(key, "").strip()]
    assert missing == []


@pytest.mark.parametrize("error", error_samples(), ids=lambda e: str(e)[:60])
def test_errors_read_in_chinese(error):
    text = error_text(error, ZH_CN, {"imagine": "</imagine:1>", "refine": "</refine:2>"})
    assert english_left(text) == [], text
    assert "{" not in text


def test_progress_results_failures_and_pings_read_in_chinese():
    texts = [progress_text(TURN, Progress(stage, position=3, attempt=2, retry_in=4.0), 12, ZH_CN)
             for stage in Stage]
    texts.append(result_caption(TURN, revised_prompt="a fox, snowing", text=None, reencoded=True,
                                rerooted=True, has_images=True, actual_size="1024x1024"))
    texts.append(result_caption(TURN, revised_prompt=None, text=None, reencoded=False,
                                rerooted=False, has_images=False))
    texts += [failure_text(TURN, UserFacingError(kind, **PARAMS)) for kind in ErrorKind]
    texts += [ping_text(TURN, done=True), ping_text(TURN, done=False)]
    for text in texts:
        assert english_left(text) == [], text


def test_labels_settings_usage_help_and_prefs_read_in_chinese():
    texts = [
        options_summary(TURN.options, ZH_CN),
        options_summary(ImageOptions(action="generate", background="opaque"), ZH_CN),
        permission_name("Send Messages in Threads", ZH_CN),
        permission_name(None, ZH_CN),
        format_settings({key.split(".", 1)[1]: [1] if key.endswith(("s", "roles")) else 1
                         for key in EN if key.startswith("setting.")}, ZH_CN),
        format_settings({"refine_mode": "starter", "moderation": "low", "locale": "en-US",
                         "max_quality": "medium", "allow_member_dms": True}, ZH_CN),
        prefs_text(UserPrefs(size="1024x1024", quality="low", partial_images=0, ping=False), ZH_CN),
        prefs_text(UserPrefs(), ZH_CN),
        plural("unit.image", 1, ZH_CN),
    ]
    texts += [t(f"status.{s.value}", ZH_CN) for s in TurnStatus]
    texts += [t(f"errorkind.{k.name}", ZH_CN) for k in ErrorKind]
    left = Allowance(False, 5, 3, 2.0, 1.5, 30.0, 20.0, 1_900_000_000, 1_900_000_000)
    texts += allowance_lines(left, ZH_CN) + allowance_lines(dataclasses.replace(left, exempt=True),
                                                            ZH_CN)
    texts += progress_lines([(TURN, None), (dataclasses.replace(TURN, status=TurnStatus.queued), 2)],
                            ZH_CN)
    policy = EffectivePolicy(
        GuildPolicy(allowed_channels=(5,), max_size="1024x1024", max_quality="medium",
                    user_daily_images=5, daily_spend_usd=1.0, monthly_spend_usd=9.0),
        Ceilings(default_options=ImageOptions()),
    )
    texts += limit_lines(policy, ZH_CN)
    texts += [stored_rules_text({"5": {"max_quality": "low", "max_size": "1024x1024",
                                       "previews": False, "imagine": True}, "6": {}}, ZH_CN)]
    texts += [ZH[key] for key in ZH if key.startswith(("help.", "describe.", "prefs.", "usage."))]
    for text in texts:
        assert english_left(text) == [], text


def test_plurals_and_wording():
    assert plural("unit.image", 1, "en-US") == "1 image"
    assert plural("unit.image", 5, "en-US") == "5 images"
    left = Allowance(False, 5, 3, 0.0, 0.0, 0.0, 0.0, 1_900_000_000, 1_900_000_000)
    assert allowance_lines(left, "en-US") == [
        "Limits: 5 images per day, 3 left, resets <t:1900000000:R>."
    ]
    limit = error_text(UserFacingError(ErrorKind.limit_reached, limit="user_daily_images", value=1,
                                       reset=1_900_000_000), "en-US")
    assert limit == "Limit reached: 1 image per person per day. It resets <t:1900000000:R>."
    # nobody is notified of a credentials or quota problem: no message claims otherwise
    assert not any("has been told" in text or "已通知" in text for text in [*EN.values(), *ZH.values()])
    # no jargon for users outside Details
    jargon = [key for key, text in EN.items()
              if re.search(r"\bturns?\b|response id|token", text, re.I)
              and not key.startswith("details.")]
    assert jargon == []
    assert "词元" in ZH["details.usage"]


def test_moderation_log_entries_and_reports_read_in_chinese():
    from bot.core.models import Report, Reporter
    from bot.ui.modlog import quick_actions, report_actions, report_entry, turn_entry

    done = dataclasses.replace(TURN, status=TurnStatus.done, message_ids=(7,), guild_id=3)
    failed = dataclasses.replace(done, status=TurnStatus.failed)
    report = Report(1, 3, TURN.id, "open", (Reporter(9, "血腥", 1.0),))
    embeds = [turn_entry(done, None, ZH_CN, "http://x/a.png"),
              turn_entry(failed, UserFacingError(ErrorKind.moderation, category="violence"), ZH_CN,
                         None),
              report_entry(report, done, ZH_CN, None),
              report_entry(dataclasses.replace(report, status="deleted"), done, ZH_CN, None)]
    texts = [text for e in embeds for text in
             (e.title or "", e.footer.text or "", *(f"{f.name} {f.value}" for f in e.fields))]
    views = [quick_actions(done, ZH_CN), report_actions(report, ZH_CN)]
    items = [getattr(item, "item", item) for view in views for item in view.children]
    texts += [item.label for item in items if isinstance(item, discord.ui.Button)]
    texts += [o.label for item in items if isinstance(item, discord.ui.Select) for o in item.options]
    assert len(texts) > 20
    texts += [re.sub(r"%\(\w+\)s", "", ZH[key]) for key in ZH  # (placeholders filled in elsewhere)
              if key.startswith(("modlog.", "report.", "mod.", "block."))]
    for text in texts:
        assert english_left(text) == [], text
