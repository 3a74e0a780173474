"""The doctor's printed checklist: each finding as it comes, and how many failed (its own
module: the doctor and its probes both write to it)."""

from __future__ import annotations

from bot.core.openai_check import Finding

PASS, FAIL, UNKNOWN = "✔", "✘", "?"


class Checklist:
    """Prints the findings as they come and counts the failures."""

    def __init__(self) -> None:
        self.failures = 0

    def section(self, title: str) -> None:
        print(f"\n{title}", flush=True)

    def add(self, ok: bool | None, text: str, fix: str = "", indent: int = 1) -> None:
        mark = PASS if ok else FAIL if ok is False else UNKNOWN
        pad = "  " * indent
        print(f"{pad}{mark} {text}", flush=True)
        if fix and ok is not True:
            print(f"{pad}    fix: {fix}", flush=True)
        if ok is False:
            self.failures += 1

    def finding(self, finding: Finding, indent: int = 1) -> None:
        self.add(finding.ok, finding.text, finding.fix, indent)
