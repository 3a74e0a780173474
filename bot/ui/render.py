"""Text that users see: errors, progress lines, result captions. Pure functions, no I/O."""

from __future__ import annotations

from collections.abc import Mapping

from bot.core.errors import ErrorKind, UserFacingError
from bot.core.models import Progress, Stage, Turn
from bot.core.options import ImageOptions
from bot.ui.i18n import EN, plural, t

MAX_CONTENT = 2000


def permission_name(name: str | None, locale: str | None) -> str:
    """A Discord permission as the user's client names it ("Attach Files", "附加文件")."""
    key = "permission." + (name or "any").lower().replace(" ", "_")
    return t(key, locale) if key in EN else str(name)


def error_text(
    error: UserFacingError, locale: str | None, commands: Mapping[str, str] | None = None
) -> str:
    """A short, specific sentence for a domain error, in the user's language. `commands` maps
    command names to their clickable mentions (`</imagine:ID>`), when known."""
    params = dict(error.params)
    for name in ("imagine", "refine"):
        params.setdefault(name, (commands or {}).get(name) or f"`/{name}`")
    if "problem" in params:
        params["problem_text"] = t(f"problem.{params['problem']}", locale, **params)
    else:
        params.setdefault("problem_text", "")
    if "reason" in params and error.kind is ErrorKind.not_allowed:
        params["reason_text"] = t(f"reason.{params['reason']}", locale, **params)
    if "limit" in params and error.kind is ErrorKind.limit_reached:
        if params["limit"] == "user_daily_images":
            params["images"] = plural("unit.image", int(params.get("value") or 0), locale)
        params["limit_name"] = t(f"limit.{params['limit']}", locale, **params)
    if error.kind is ErrorKind.missing_permissions:
        params["permission"] = permission_name(params.get("permission"), locale)
    if error.kind is ErrorKind.moderation:
        category = params.get("category")
        params["category_text"] = t("moderation.category", locale, category=category) if category else ""
    if error.kind is ErrorKind.invalid_request:
        params["reason"] = clip(str(params.get("reason") or "invalid request"), 200)
    return clip(t(error.kind.value, locale, **params), MAX_CONTENT)


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def quote(text: str, limit: int = 300) -> str:
    """A prompt shown as a block quote, clipped, with mentions defused."""
    body = clip(text.replace("@", "@\u200b"), limit)
    return "\n".join(f"> {line}" if line else ">" for line in body.splitlines() or [""])


def progress_text(turn: Turn, progress: Progress, elapsed: float, locale: str | None) -> str:
    header = f"{quote(turn.prompt, 200)}\n"
    if progress.stage is Stage.queued:
        line = (
            t("progress.queued", locale, position=progress.position)
            if progress.position
            else t("progress.queued_now", locale)
        )
    elif progress.stage is Stage.retrying:
        line = t("progress.retrying", locale, seconds=f"{progress.retry_in or 0:.0f}",
                 attempt=progress.attempt)
    elif progress.stage is Stage.paused:
        line = t("progress.paused", locale)
    elif progress.stage is Stage.partial:
        line = t("progress.partial", locale, elapsed=int(elapsed),
                 index=(progress.partial_index or 0) + 1)
    elif progress.stage is Stage.generating:
        line = t("progress.generating", locale, elapsed=int(elapsed))
    else:
        line = t("progress.started", locale)
    return clip(f"{header}{line} · {t('result.by', locale, user=turn.author_id)}", MAX_CONTENT)


def result_caption(
    turn: Turn,
    *,
    revised_prompt: str | None,
    text: str | None,
    reencoded: bool,
    rerooted: bool,
    has_images: bool,
    actual_size: str | None = None,
) -> str:
    """The message shown with a result: the prompt, any model text, and a compact footer."""
    locale = turn.locale
    parts = [quote(turn.prompt, 300)]
    if text:
        parts.append(clip(text, 1000))
    elif not has_images:
        parts.append(t("result.text_only", locale))
    footer = [t("result.by", locale, user=turn.author_id),
              options_summary(turn.options, locale, actual_size)]
    if reencoded:
        footer.append(t("result.reencoded", locale))
    # how the chain was carried (rerooted) is for Details, not the footer
    footer.append(f"#{turn.number or turn.id}")
    parts.append("-# " + " · ".join(footer))
    if revised_prompt and revised_prompt.strip() != turn.prompt.strip():
        parts.append("-# " + t("result.revised", locale, text=clip(revised_prompt, 300)))
    return clip("\n".join(parts), MAX_CONTENT)


def failure_text(turn: Turn, error: UserFacingError) -> str:
    return clip(
        f"{quote(turn.prompt, 200)}\n"
        + t("progress.failed", turn.locale, message=error_text(error, turn.locale))
        + f"\n-# {t('result.by', turn.locale, user=turn.author_id)} · #{turn.number or turn.id}",
        MAX_CONTENT,
    )


def options_summary(options: ImageOptions, locale: str | None, actual_size: str | None = None) -> str:
    """The options as users read them, e.g. `edit · 1536x1024 · high quality · webp`: the labels
    the options use; `actual_size` is what the API produced; choices left at auto are left out."""
    parts = []
    if options.action in ("generate", "edit"):
        parts.append(t(f"label.action.{options.action}", locale))
    size = options.size if options.size and options.size != "auto" else actual_size
    parts.append(size or t("label.size_auto", locale))
    if options.quality and options.quality != "auto":
        parts.append(t(f"label.quality.{options.quality}", locale))
    parts.append(options.output_format or "png")
    if options.background in ("transparent", "opaque"):
        parts.append(t(f"label.background.{options.background}", locale))
    if options.compression is not None:
        parts.append(t("label.compression", locale, value=options.compression))
    if options.moderation == "low":
        parts.append(t("label.moderation.low", locale))
    return " · ".join(parts)


def ping_text(turn: Turn, *, done: bool) -> str:
    """The short reply that notifies the requester that their turn is over."""
    return t("ping.done" if done else "ping.failed", turn.locale, user=turn.author_id)


def jump_link(guild_id: int | None, channel_id: int, message_id: int) -> str:
    """A link to a Discord message (`@me` in DMs)."""
    return f"https://discord.com/channels/{guild_id or '@me'}/{channel_id}/{message_id}"


def thread_name(prompt: str) -> str:
    """A thread name from a prompt: one line, cut cleanly at a word within 100 characters."""
    line = " ".join(prompt.split())
    if len(line) <= 100:
        return line or "image"
    cut = line[:99]
    space = cut.rfind(" ")
    if space >= 60:
        cut = cut[:space]
    return cut.rstrip(" ,.;:-") + "…"


def locked_text(turn: Turn, content: str) -> str:
    """`content` as shown in the parent channel of a locked thread: who it is for, and why."""
    header = t("result.thread_locked", turn.locale, user=turn.author_id,
               thread=f"<#{turn.conversation_id}>")
    return clip(f"{header}\n{content}", MAX_CONTENT)
