"""The lock files (requirements/*.lock, made by `sh requirements/lock`) stay in step with
pyproject.toml: every dependency it names is pinned there, at a version it accepts. A dependency
added to pyproject.toml without regenerating the locks fails here, not in a deployment."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)", re.MULTILINE)


def pins(lock: str) -> dict[str, str]:
    text = (ROOT / "requirements" / lock).read_text(encoding="utf-8")
    return {canonicalize_name(name): version for name, version in PIN.findall(text)}


def out_of_step(requirements: list[str], pinned: dict[str, str]) -> list[str]:
    problems = []
    for line in requirements:
        req = Requirement(line)
        version = pinned.get(canonicalize_name(req.name))
        if version is None:
            problems.append(f"{req.name}: not in the lock")
        elif not req.specifier.contains(version, prereleases=True):
            problems.append(f"{req.name}: locked {version}, pyproject wants {req.specifier}")
    return problems


def test_both_locks_pin_every_dependency_at_an_accepted_version() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    runtime, dev = project["dependencies"], project["optional-dependencies"]["dev"]
    assert out_of_step(runtime, pins("bot.lock")) == []
    assert out_of_step(runtime + dev, pins("dev.lock")) == []


def test_a_dependency_missing_from_the_lock_is_reported() -> None:
    assert out_of_step(["pillow>=11", "not-a-real-package>=1"], {"pillow": "10.0.0"}) == [
        "pillow: locked 10.0.0, pyproject wants >=11", "not-a-real-package: not in the lock"]
