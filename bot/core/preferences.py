"""A member's own settings: the locale of their latest interaction (what messages addressed to
them later are written in) and their default image options, checked against a server's limits."""

from __future__ import annotations

import logging

from bot.core.errors import UserFacingError
from bot.core.gate import Policies
from bot.core.models import UserPrefs
from bot.core.options import ImageOptions
from bot.core.policy import EffectivePolicy
from bot.store.protocol import Store

log = logging.getLogger(__name__)


class Preferences:
    """Members' locales (kept in memory once read) and default options."""

    def __init__(self, store: Store, policies: Policies) -> None:
        self.store = store
        self.policies = policies
        self._locales: dict[int, str] = {}

    async def remember_locale(self, user_id: int, locale: str) -> None:
        """Keep the locale of a member's latest interaction (written only when it changes)."""
        if self._locales.get(user_id) == locale:
            return
        await self.store.user_prefs.set_locale(user_id, locale)
        self._locales[user_id] = locale

    async def locale_of(self, user_id: int) -> str | None:
        """The locale of the member's latest interaction, if the bot has seen one."""
        if user_id not in self._locales:
            locale = (await self.store.user_prefs.get(user_id)).locale
            if locale is None:
                return None
            self._locales[user_id] = locale
        return self._locales[user_id]

    async def user_prefs(self, user_id: int) -> UserPrefs:
        return await self.store.user_prefs.get(user_id)

    async def save_prefs(self, user_id: int, guild_id: int | None, prefs: UserPrefs) -> None:
        """Store a member's defaults after checking them against this server's limits."""
        policy = await self.policies.policy_for(guild_id)
        policy.clamp(prefs.options().merged_over(policy.defaults()))
        await self.store.user_prefs.put(user_id, prefs)

    async def options_within(self, user_id: int, policy: EffectivePolicy) -> ImageOptions:
        """A member's own defaults, or none if the server's limits no longer allow them."""
        chosen = (await self.store.user_prefs.get(user_id)).options()
        try:
            policy.clamp(chosen.merged_over(policy.defaults()))
        except UserFacingError:
            log.info("Preferences of user %s exceed the server's limits; not applied", user_id)
            return ImageOptions()
        return chosen
