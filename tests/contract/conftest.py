"""The contract tests drive the real bot with the end-to-end fixtures (both fakes, settings)."""

from tests.e2e.conftest import (  # noqa: F401  (fixtures)
    backend,
    database_url,
    discord_fake,
    make_settings,
    openai_fake,
)
