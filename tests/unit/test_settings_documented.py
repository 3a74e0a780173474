"""Every setting is documented where an operator looks: `.env.example` and the README's table."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bot.config import Settings

ROOT = Path(__file__).resolve().parents[2]
NAMES = [name.upper() for name in Settings.model_fields]


@pytest.mark.parametrize("name", NAMES)
def test_the_setting_is_in_env_example(name: str) -> None:
    text = (ROOT / ".env.example").read_text(encoding="utf-8")
    assert re.search(rf"^#?{name}=", text, re.MULTILINE), f"{name} is missing from .env.example"


@pytest.mark.parametrize("name", NAMES)
def test_the_setting_is_in_the_readme_table(name: str) -> None:
    rows = [line for line in (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
            if line.startswith("| `")]
    assert any(re.search(rf"`{name}`", row) for row in rows), f"{name} has no README table row"
