"""Persistent buttons on results and progress messages.

Each button is a `ui.DynamicItem` whose `custom_id` carries its state (`imagine:<action>:<turn>`),
so buttons keep working after a restart without any view being re-registered per message. The
click goes through the router (`TURN_BUTTON`) to the cog that serves it, which checks who may act
and calls the core.
"""

from __future__ import annotations

import re
import secrets
from typing import Any, Protocol

import discord

from bot.core.image_models import spec_of
from bot.ui.i18n import t
from bot.ui.modlog import ReportButton
from bot.ui.router import TURN_BUTTON, dispatch

# Animate, Zoom out and Pan show their cost first (like Upscale); `<action>go` confirms
PLANNED = ("anim", "zoom15", "zoom2", "panl", "panr", "panu", "pand")
ACTIONS = ("reroll", "retry", "edit", "hq", "hqgo", "refine", "continue", "details", "delete",
           "cancel", "region", "regiongo", *PLANNED, *(f"{action}go" for action in PLANNED))
_STYLES = {
    "reroll": (discord.ButtonStyle.secondary, "🔁"),
    "retry": (discord.ButtonStyle.primary, "🔁"),
    "edit": (discord.ButtonStyle.secondary, "📝"),
    "hq": (discord.ButtonStyle.secondary, "⬆️"),
    "hqgo": (discord.ButtonStyle.success, "✅"),
    "refine": (discord.ButtonStyle.primary, "✏️"),
    "continue": (discord.ButtonStyle.secondary, "➡️"),
    "details": (discord.ButtonStyle.secondary, "ℹ️"),
    "delete": (discord.ButtonStyle.danger, "🗑️"),
    "cancel": (discord.ButtonStyle.danger, "✖️"),
    "anim": (discord.ButtonStyle.secondary, "🎞️"),
    "zoom15": (discord.ButtonStyle.secondary, "🔎"),
    "zoom2": (discord.ButtonStyle.secondary, "🔭"),
    "panl": (discord.ButtonStyle.secondary, "⬅️"),
    "panr": (discord.ButtonStyle.secondary, "➡️"),
    "panu": (discord.ButtonStyle.secondary, "⬆️"),
    "pand": (discord.ButtonStyle.secondary, "⬇️"),
    "region": (discord.ButtonStyle.secondary, "🖌️"),
    **{f"{action}go": (discord.ButtonStyle.success, "✅") for action in (*PLANNED, "region")},
}


class TurnButton(
    discord.ui.DynamicItem[discord.ui.Button[Any]],
    template=r"imagine:(?P<action>[a-z0-9]+):(?P<turn>[0-9]+)",
):
    """One action on one turn."""

    def __init__(self, action: str, turn_id: int, locale: str | None = None) -> None:
        style, emoji = _STYLES[action]
        super().__init__(
            discord.ui.Button(
                style=style,
                label=t(f"button.{action}", locale),
                emoji=emoji,
                custom_id=f"imagine:{action}:{turn_id}",
            )
        )
        self.action = action
        self.turn_id = turn_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str]
    ) -> TurnButton:
        action = match["action"]
        if action not in ACTIONS:
            raise ValueError(f"unknown action {action!r}")
        return cls(action, int(match["turn"]), str(interaction.locale))

    async def callback(self, interaction: discord.Interaction) -> None:
        await dispatch(TURN_BUTTON, interaction, self.action, self.turn_id)


def result_view(turn_id: int, locale: str | None, extra: tuple[str, ...] = ()) -> discord.ui.View:
    """A result's buttons; `extra`: what its image model allows on it (`extra_actions`)."""
    view = discord.ui.View(timeout=None)
    for action in ("reroll", "refine", "hq", "continue", "details", "delete", *extra):
        view.add_item(TurnButton(action, turn_id, locale))
    view.add_item(ReportButton(turn_id, locale))
    return view


def extra_actions(image_model: str | None, output_format: str | None) -> tuple[str, ...]:
    """Animate where the model draws GIFs; zoom, pan and vary region on a still where it takes
    masks (a GIF takes no mask: SDK `output_format`)."""
    spec = spec_of(image_model)
    actions: tuple[str, ...] = ("anim",) if spec.gif and output_format != "gif" else ()
    if spec.masks and output_format != "gif":
        actions += ("zoom15", "zoom2", "panl", "panr", "panu", "pand", "region")
    return actions


def plan_confirm_view(action: str, turn_id: int, locale: str | None) -> discord.ui.View:
    """The Confirm button under an Animate / Zoom out / Pan cost estimate."""
    view = discord.ui.View(timeout=None)
    view.add_item(TurnButton(f"{action}go", turn_id, locale))
    return view


def upscale_confirm_view(turn_id: int, locale: str | None) -> discord.ui.View:
    """The Confirm button under an Upscale / HQ cost estimate."""
    view = discord.ui.View(timeout=None)
    view.add_item(TurnButton("hqgo", turn_id, locale))
    return view


def cancel_view(turn_id: int, locale: str | None) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    view.add_item(TurnButton("cancel", turn_id, locale))
    return view


def failure_view(turn_id: int, locale: str | None, *, retryable: bool) -> discord.ui.View:
    """A failed or blocked result offers "Edit prompt", and "Retry" when the same request may
    succeed again (a good result offers "Reroll" instead)."""
    view = discord.ui.View(timeout=None)
    if retryable:
        view.add_item(TurnButton("retry", turn_id, locale))
    view.add_item(TurnButton("edit", turn_id, locale))
    return view


# How long an opened form waits for its submission. discord.py keeps each open form in a store
# keyed by its custom_id until it is submitted or times out: a form dismissed with Cancel would
# otherwise stay there for good.
FORM_TIMEOUT = 30 * 60.0


def form_id(prefix: str) -> str:
    """A custom_id of its own for one opened form (`prefix` plus a random part): two members, or
    one member twice, can have the same form open and each submission reaches its own form."""
    return f"{prefix}:{secrets.token_hex(8)}"


class TurnForms(Protocol):
    """Who receives the submitted Refine, Edit prompt and Vary region forms (the cog that
    opened them)."""

    async def on_refine_submit(self, interaction: discord.Interaction, turn_id: int,
                               instruction: str, variants: str = "") -> None: ...

    async def on_edit_submit(self, interaction: discord.Interaction, turn_id: int,
                             prompt: str) -> None: ...

    async def on_region_submit(self, interaction: discord.Interaction, turn_id: int, area: str,
                               instruction: str) -> None: ...


class RefineModal(discord.ui.Modal):
    """Asks for the instruction that branches from one image (`mode="refine"`), or for a new
    version of a failed turn's prompt (`mode="edit"`); pre-filled with the turn's prompt, so a
    small change is a small edit."""

    def __init__(
        self, cog: TurnForms, turn_id: int, locale: str | None, *, prompt: str = "",
        mode: str = "refine",
    ) -> None:
        super().__init__(title=t(f"modal.{mode}.title", locale), timeout=FORM_TIMEOUT,
                         custom_id=form_id(f"imagine:{mode}-modal:{turn_id}"))
        self.cog = cog
        self.turn_id = turn_id
        self.mode = mode
        self.instruction: discord.ui.TextInput[RefineModal] = discord.ui.TextInput(
            label=t(f"modal.{mode}.label", locale),
            placeholder=t("modal.placeholder", locale),
            default=prompt[:2000] or None,
            style=discord.TextStyle.paragraph,
            max_length=2000,
            custom_id="instruction",
        )
        self.add_item(self.instruction)
        self.variants: discord.ui.TextInput[RefineModal] = discord.ui.TextInput(
            label=t("modal.variants", locale),
            placeholder="1-4",
            style=discord.TextStyle.short,
            required=False,
            max_length=1,
            custom_id="variants",
        )
        if mode == "refine":
            self.add_item(self.variants)

    async def on_submit(self, interaction: discord.Interaction) -> None:
        if self.mode == "edit":
            await self.cog.on_edit_submit(interaction, self.turn_id, self.instruction.value)
            return
        await self.cog.on_refine_submit(
            interaction, self.turn_id, self.instruction.value, self.variants.value or ""
        )


class RegionModal(discord.ui.Modal):
    """Vary region: which area to change (a short description: top half, left third, the
    centre…) and what to put there, since a mask cannot be drawn in Discord."""

    def __init__(self, cog: TurnForms, turn_id: int, locale: str | None) -> None:
        super().__init__(title=t("modal.region.title", locale),
                         custom_id=f"imagine:region-modal:{turn_id}")
        self.cog = cog
        self.turn_id = turn_id
        self.area: discord.ui.TextInput[RegionModal] = discord.ui.TextInput(
            label=t("modal.region.area", locale), placeholder=t("modal.region.area_hint", locale),
            style=discord.TextStyle.short, max_length=80, custom_id="area",
        )
        self.instruction: discord.ui.TextInput[RegionModal] = discord.ui.TextInput(
            label=t("modal.region.label", locale), placeholder=t("modal.placeholder", locale),
            style=discord.TextStyle.paragraph, max_length=2000, custom_id="instruction",
        )
        self.add_item(self.area)
        self.add_item(self.instruction)

    async def on_submit(self, interaction: discord.Interaction) -> None:
        await self.cog.on_region_submit(interaction, self.turn_id, self.area.value,
                                        self.instruction.value)
