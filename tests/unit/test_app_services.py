"""`build_services`: the non-Discord half of start-up, built from settings alone."""

from __future__ import annotations

from pathlib import Path

from bot.app import build_services
from bot.config import Settings
from tests.ports import stand_in_ports


async def test_build_services_wires_the_settings_into_the_core(tmp_path: Path) -> None:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        discord_token="token", openai_api_key="key", database_path=tmp_path / "bot.db",
        max_prompt_chars=123, default_quality="low", max_quality="medium",
        user_daily_images=7, discord_api_base="http://127.0.0.1:9/api/v10",
    )
    services = await build_services(settings, stand_in_ports())
    try:
        assert (tmp_path / "bot.db").exists()
        await services.store.meta.put("probe", "1")  # the store is open and migrated
        assert await services.store.meta.get("probe") == "1"
        gate = services.core.gate
        assert gate.max_prompt_chars == 123
        assert gate.ceilings.default_options.quality == "low"
        assert gate.ceilings.max_quality == "medium"
        assert gate.ceilings.user_daily_images == 7
        assert str(services.openai.api_key) == "key"
        assert services.openai.max_retries == 0
    finally:
        await services.openai.close()
        await services.store.close()
