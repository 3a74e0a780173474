"""Documents stay inside the repository: no Markdown file points at a path outside it (a
`../shared/…` that only exists on one machine), and every relative link leads to a file."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SKIP_DIRS = {".git", ".venv", "venv", "build", "node_modules", "sandbox-output", ".pytest_cache",
             ".ruff_cache"}
# any `../…` path, in a link, in code or in prose
PARENT_PATH = re.compile(r"(?:\.\./)+[\w.\-/]*")
# [text](target) and <a href="target">
LINK = re.compile(r"\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)|href=\"([^\"]+)\"")
EXTERNAL = re.compile(r"^[a-z][a-z0-9+.-]*:", re.IGNORECASE)  # https:, mailto:, …


def markdown_files() -> list[Path]:
    return sorted(
        p for p in ROOT.rglob("*.md")
        if not SKIP_DIRS & set(p.relative_to(ROOT).parts) and not any(
            part.endswith(".egg-info") for part in p.relative_to(ROOT).parts)
    )


def _inside(path: Path) -> bool:
    return path.resolve().is_relative_to(ROOT)


def test_no_path_leaves_the_repository() -> None:
    outside = [f"{doc.relative_to(ROOT)}: {m.group(0)}" for doc in markdown_files()
               for m in PARENT_PATH.finditer(doc.read_text(encoding="utf-8"))
               if not _inside(doc.parent / m.group(0))]
    assert outside == []


def _broken_links(doc: Path) -> list[str]:
    broken = []
    for match in LINK.finditer(doc.read_text(encoding="utf-8")):
        target = (match.group(1) or match.group(2)).split("#", 1)[0]
        if not target or EXTERNAL.match(target):
            continue
        path = ROOT / target.lstrip("/") if target.startswith("/") else doc.parent / target
        if not _inside(path) or not path.exists():
            broken.append(f"{doc.relative_to(ROOT)}: {target}")
    return broken


def test_relative_links_lead_to_files_in_the_repository() -> None:
    assert [link for doc in markdown_files() for link in _broken_links(doc)] == []


def test_the_checks_see_an_escaping_path(tmp_path: Path) -> None:
    """The patterns find what they are for: a `../` path out of the root, in code and in a link."""
    text = "See `../shared/DESIGN.md` and [the plan](../../DESIGN.md)."
    found = [m.group(0) for m in PARENT_PATH.finditer(text)]
    assert found == ["../shared/DESIGN.md", "../../DESIGN.md"]
    assert not _inside(ROOT / found[0])
    assert [m.group(1) for m in LINK.finditer(text)] == ["../../DESIGN.md"]


def test_the_readme_test_command_is_what_ci_runs() -> None:
    """The README's second set-up command and `.ci/run` stay in step (lint, then the suite)."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    [documented] = [line.split("#", 1)[0].strip() for line in readme.splitlines()
                    if line.startswith("python -m pip install --require-hashes")]
    [run] = [line.strip().replace(" --quiet", "") for line in ci.splitlines()
             if line.startswith("python -m pip install --quiet --require-hashes")]
    assert documented == run
    assert "-r requirements/dev.lock" in run  # the locked versions (requirements/lock makes them)
    assert "ruff check ." in run and "python -m pytest" in run
    # the parallel run leaves out exactly the tests that bound elapsed time, which then run alone
    assert 'python -m pytest -n 2 -m "not wall_clock" && python -m pytest -m wall_clock' in run
