"""Channel permission arithmetic (Discord docs: Topics -> Permissions -> Permission
Overwrites), checked against hand-computed cases."""

from __future__ import annotations

from discord import Permissions

from bot.permissions import base_permissions, channel_permissions, missing

GUILD, ROLE_A, ROLE_B, ME = 100, 201, 202, 300
VIEW = Permissions(view_channel=True).value
SEND = Permissions(send_messages=True).value
ATTACH = Permissions(attach_files=True).value
EMBED = Permissions(embed_links=True).value


def ow(target: int, kind: int, allow: int = 0, deny: int = 0) -> dict[str, object]:
    return {"id": str(target), "type": kind, "allow": str(allow), "deny": str(deny)}


def in_channel(roles: dict[int, int], overwrites: list[dict[str, object]],
               member_roles: tuple[int, ...] = (ROLE_A, ROLE_B)) -> int:
    base = base_permissions(GUILD, roles, member_roles)
    return channel_permissions(base, guild_id=GUILD, member_id=ME, member_roles=member_roles,
                               overwrites=overwrites).value


def test_roles_add_up_and_everyone_counts():
    assert base_permissions(GUILD, {GUILD: VIEW, ROLE_A: SEND, ROLE_B: ATTACH},
                            [ROLE_A]).value == VIEW | SEND


def test_administrator_and_owner_get_everything():
    admin = Permissions(administrator=True).value
    everything = Permissions.all().value
    assert base_permissions(GUILD, {GUILD: 0, ROLE_A: admin}, [ROLE_A]).value == everything
    assert base_permissions(GUILD, {GUILD: 0}, [], owner=True).value == everything
    # overwrites do not apply to an administrator
    assert in_channel({GUILD: VIEW, ROLE_A: admin}, [ow(ME, 1, deny=VIEW)]) == everything


def test_overwrite_order_everyone_then_roles_then_member():
    roles = {GUILD: VIEW | SEND | ATTACH | EMBED, ROLE_A: 0, ROLE_B: 0}
    # @everyone denies ATTACH, one role allows it back: allowed (roles come after @everyone)
    assert in_channel(roles, [ow(GUILD, 0, deny=ATTACH), ow(ROLE_A, 0, allow=ATTACH)]) & ATTACH
    # one role allows, another denies: the role allow wins (allows are applied after denies)
    assert in_channel(roles, [ow(ROLE_A, 0, deny=EMBED), ow(ROLE_B, 0, allow=EMBED)]) & EMBED
    # a member deny beats a role allow
    got = in_channel(roles, [ow(ROLE_A, 0, allow=ATTACH), ow(ME, 1, deny=ATTACH)])
    assert not got & ATTACH
    # a member allow beats an @everyone deny
    assert in_channel(roles, [ow(GUILD, 0, deny=SEND), ow(ME, 1, allow=SEND)]) & SEND
    # overwrites for roles the member does not have, or other members, change nothing
    assert in_channel(roles, [ow(999, 0, deny=ATTACH), ow(301, 1, deny=ATTACH)],
                      member_roles=(ROLE_A,)) == roles[GUILD]


def test_no_view_channel_means_nothing():
    roles = {GUILD: VIEW | SEND | ATTACH, ROLE_A: 0, ROLE_B: 0}
    assert in_channel(roles, [ow(GUILD, 0, deny=VIEW)]) == 0


def test_missing_names_the_required_permissions():
    have = Permissions(view_channel=True, create_public_threads=True, attach_files=True,
                       read_message_history=True)
    assert missing(have) == ["Send Messages in Threads", "Embed Links"]
