"""A member's permissions in a guild channel, from the raw REST payloads (no gateway cache).

Discord's algorithm (docs: Topics -> Permissions -> "Permission Overwrites"): the @everyone
role's permissions OR the member's roles; ADMINISTRATOR (or owning the guild) grants all; then in
the channel the @everyone overwrite (deny, then allow), all the member's role overwrites together
(deny, then allow), then the member's own overwrite (deny, then allow). Without VIEW_CHANNEL a
member has no permission in the channel. The bit arithmetic is discord.py's `Permissions`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from discord import Permissions

ROLE, MEMBER = 0, 1  # overwrite types

# What the bot needs where it runs: /imagine opens a public thread from its reply and posts the
# image there with an embed; refinements read earlier messages (replies, parent images).
REQUIRED: tuple[tuple[str, str], ...] = (
    ("create_public_threads", "Create Public Threads"),
    ("send_messages_in_threads", "Send Messages in Threads"),
    ("attach_files", "Attach Files"),
    ("embed_links", "Embed Links"),
    ("read_message_history", "Read Message History"),
)


def base_permissions(
    guild_id: int, roles: Mapping[int, int], member_roles: Iterable[int], *, owner: bool = False
) -> Permissions:
    """Guild-wide permissions: @everyone (the role whose id is the guild id) plus member roles."""
    if owner:
        return Permissions.all()
    value = roles.get(guild_id, 0)
    for role_id in member_roles:
        value |= roles.get(role_id, 0)
    perms = Permissions(value)
    return Permissions.all() if perms.administrator else perms


def _apply(value: int, allow: int, deny: int) -> int:
    return (value & ~deny) | allow


def channel_permissions(
    base: Permissions,
    *,
    guild_id: int,
    member_id: int,
    member_roles: Iterable[int],
    overwrites: Sequence[Mapping[str, Any]],
) -> Permissions:
    """The member's permissions in one channel, given its guild-wide `base` and the channel's
    `permission_overwrites` (`{"id", "type", "allow", "deny"}`, bitfields as strings)."""
    if base.administrator:
        return Permissions.all()
    role_ids = set(member_roles)
    value = base.value
    role_allow = role_deny = 0
    for ow in overwrites:
        target, kind = int(ow["id"]), int(ow["type"])
        if kind == ROLE and target == guild_id:
            value = _apply(value, int(ow["allow"]), int(ow["deny"]))
        elif kind == ROLE and target in role_ids:
            role_allow |= int(ow["allow"])
            role_deny |= int(ow["deny"])
    value = _apply(value, role_allow, role_deny)
    for ow in overwrites:
        if int(ow["type"]) == MEMBER and int(ow["id"]) == member_id:
            value = _apply(value, int(ow["allow"]), int(ow["deny"]))
    perms = Permissions(value)
    return perms if perms.view_channel else Permissions.none()


def missing(perms: Permissions) -> list[str]:
    """The display names of the required permissions `perms` lacks."""
    return [label for flag, label in REQUIRED if not getattr(perms, flag)]


def invite_permissions() -> Permissions:
    """What to ask for in the invite link: the required permissions plus seeing the channel."""
    return Permissions(view_channel=True, send_messages=True,
                       **{flag: True for flag, _ in REQUIRED})
