"""Every setting is documented where an operator looks: `.env.example` and the README's table."""

from __future__ import annotations

import re
from pathlib import Path

from bot.config import Settings

ROOT = Path(__file__).resolve().parents[2]
NAMES = [name.upper() for name in Settings.model_fields]


def test_every_setting_is_in_env_example() -> None:
    text = (ROOT / ".env.example").read_text(encoding="utf-8")
    missing = [name for name in NAMES if not re.search(rf"^#?{name}=", text, re.MULTILINE)]
    assert missing == [], "missing from .env.example"


def test_every_setting_has_a_readme_table_row() -> None:
    rows = [line for line in (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
            if line.startswith("| `")]
    missing = [name for name in NAMES if not any(f"`{name}`" in row for row in rows)]
    assert missing == [], "no README table row"
