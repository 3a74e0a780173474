"""Posts the bot opens in forum channels (Discord docs: Resources → Channel, forum channels)."""

from __future__ import annotations

import discord

TAG_REQUIRED = 40067  # a forum with the REQUIRE_TAG flag refuses a post without tags


def forum_tags(forum: discord.ForumChannel) -> list[discord.ForumTag]:
    """The tags a new post gets: none unless the forum requires one, then the first tag the bot
    may apply (a moderated tag needs Manage Threads, so those are skipped)."""
    if not forum.flags.require_tag:
        return []
    return [tag for tag in forum.available_tags if not tag.moderated][:1]
