"""The offline sandbox: `python -m bot` as a black box against both fakes, one scripted
conversation, images and a transcript written to a folder."""

from __future__ import annotations

from tests.fakes.openai_server import read_lineage
from tests.sandbox import SCRIPT, play


async def test_sandbox_writes_the_chained_images(tmp_path):
    written = await play(tmp_path, latency=0.05)
    assert len(written) == len(SCRIPT)
    lineages = [read_lineage(path.read_bytes()) for path in written]
    first, second, third, branch = (prompt for _, prompt in SCRIPT)
    assert lineages == [
        [first],
        [first, second],
        [first, second, third],
        [first, branch],
    ]
    transcript = (tmp_path / "transcript.md").read_text(encoding="utf-8")
    assert first in transcript and branch in transcript
