"""The /history contact sheet: a known tree's layout and the picture it becomes."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from bot.ui.contact_sheet import SheetCell, layout, render_sheet


def png(colour: str) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (1024, 1536), colour).save(out, "PNG")
    return out.getvalue()


# 1 ─ 2 ─ 3        two children of 2 (3 and 5), a second child of 1 (4),
# │   └── 5        and 6, whose parent (#9) is on another page
# └── 4
# 6 (from #9)
TREE = [
    SheetCell(1, None, "a castle", "alice", thumbnail=png("red")),
    SheetCell(2, 1, "add a moat", "alice", thumbnail=png("blue")),
    SheetCell(3, 2, "make it winter", "bob", state="failed"),
    SheetCell(4, 1, "make it night", "bob", thumbnail=png("green"), deleted=True),
    SheetCell(5, 2, "dragons", "alice", thumbnail=png("yellow"), head=True),
    SheetCell(6, 9, "from an earlier page", "carol", state="pending"),
]


def test_layout_puts_depth_in_columns_and_branches_in_new_rows():
    assert layout(TREE) == {1: (0, 0), 2: (1, 0), 3: (2, 0), 4: (1, 1), 5: (2, 2), 6: (0, 3)}


def test_a_line_stays_on_one_row():
    line = [SheetCell(n, n - 1 if n > 1 else None, f"step {n}", "a") for n in range(1, 6)]
    assert layout(line) == {n: (n - 1, 0) for n in range(1, 6)}


def test_sheet_size_and_marks():
    image = Image.open(io.BytesIO(render_sheet(TREE, "#1-#6 / 6"))).convert("RGB")
    # 3 columns and 4 rows of 200x230 cells, 48 px left margin, 20 right, 34 title + 20 top
    assert image.size == (48 + 3 * 200 - 40 + 20, 34 + 20 + 4 * 230)
    # thumbnails sit at (48 + 200 * column, 54 + 230 * row); sample inside each
    assert image.getpixel((48 + 80, 54 + 100)) == (255, 0, 0)  # turn 1's image
    assert image.getpixel((248 + 80, 54 + 100)) == (0, 0, 255)  # turn 2's image
    assert image.getpixel((448 + 2, 54 + 80)) == (0xDA, 0x37, 0x3C)  # turn 3: red (failed) frame
    assert image.getpixel((448 + 2, 514 + 80)) == (0xF0, 0xB2, 0x32)  # turn 5: gold (head) frame
    green = image.getpixel((248 + 40, 284 + 120))  # turn 4: deleted, its image greyed out
    assert green != (0, 128, 0) and max(green) - min(green) < 60


def test_a_configured_font_must_exist(tmp_path):
    import pydantic

    from bot.config import Settings

    with pytest.raises(pydantic.ValidationError, match="no font file"):
        Settings(_env_file=None, discord_token="x", openai_api_key="y",
                 sheet_font_path=tmp_path / "missing.ttf")


DEJAVU = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")


@pytest.mark.skipif(not DEJAVU.is_file(), reason="needs the DejaVu fonts installed")
def test_captions_use_the_configured_font():
    plain = render_sheet(TREE[:1], "t")
    styled = render_sheet(TREE[:1], "t", font_path=str(DEJAVU))
    assert Image.open(io.BytesIO(plain)).size == Image.open(io.BytesIO(styled)).size
    assert plain != styled  # same layout, other glyphs
