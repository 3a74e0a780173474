"""The `/history` contact sheet: one thumbnail per turn, laid out as the conversation's tree.

Columns are depth (a turn sits one column right of its parent); rows are branches: a turn's first
child continues its row, every further child starts a new row below, so each row is one line of
refinements and a branch shows as a connector dropping to a new row. Pillow work, blocking: call
`render_sheet` with `asyncio.to_thread`.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

from PIL import Image, ImageDraw, ImageFont, UnidentifiedImageError

THUMB = 160  # the thumbnail square
GAP = 40  # between columns: the connectors run here
CELL_W = THUMB + GAP
CAPTION_H = 54  # two lines of prompt and the author's name
CELL_H = THUMB + CAPTION_H + 16
MARGIN = 20
MARGIN_L = 48  # room for "#n" of a parent on an earlier page
HEADER = 34
BG, PANEL, TEXT, MUTED = "#2b2d31", "#1e1f22", "#dbdee1", "#949ba4"
EDGE, HEAD, FAILED, DELETED, PENDING = "#80848e", "#f0b232", "#da373c", "#4e5058", "#5865f2"


@dataclass(frozen=True, slots=True)
class SheetCell:
    """One turn as the sheet shows it."""

    number: int
    parent_number: int | None
    caption: str
    author: str
    state: str = "done"  # done | failed | cancelled | pending
    deleted: bool = False
    head: bool = False
    thumbnail: bytes | None = None


def layout(cells: list[SheetCell]) -> dict[int, tuple[int, int]]:
    """(column, row) of each turn number. A turn whose parent is not on the sheet starts a new
    row in column 0."""
    on_sheet = {cell.number for cell in cells}
    children: dict[int, list[int]] = {}
    roots: list[int] = []
    for cell in sorted(cells, key=lambda c: c.number):
        if cell.parent_number in on_sheet:
            children.setdefault(cell.parent_number, []).append(cell.number)
        else:
            roots.append(cell.number)
    positions: dict[int, tuple[int, int]] = {}
    next_row = 0
    for root in roots:
        stack = [(root, 0, next_row)]
        next_row += 1
        while stack:
            number, column, row = stack.pop()
            positions[number] = (column, row)
            kids = children.get(number, [])
            placed = [(kids[0], column + 1, row)] if kids else []
            for kid in kids[1:]:
                placed.append((kid, column + 1, next_row))
                next_row += 1
            stack.extend(reversed(placed))  # the first child is laid out first
    return positions


def sheet_size(positions: dict[int, tuple[int, int]]) -> tuple[int, int]:
    columns = max((c for c, _ in positions.values()), default=0) + 1
    rows = max((r for _, r in positions.values()), default=0) + 1
    return MARGIN_L + columns * CELL_W - GAP + MARGIN, HEADER + MARGIN + rows * CELL_H


def cell_origin(column: int, row: int) -> tuple[int, int]:
    """Top-left corner of a cell's thumbnail."""
    return MARGIN_L + column * CELL_W, HEADER + MARGIN + row * CELL_H


def load_font(size: int, path: str | None = None) -> ImageFont.FreeTypeFont:
    """The captions' font: a configured font file, else Pillow's built-in one (Latin only)."""
    if path:
        return ImageFont.truetype(path, size)
    return ImageFont.load_default(size)  # type: ignore[return-value]


def render_sheet(cells: list[SheetCell], title: str, font_path: str | None = None) -> bytes:
    """The contact sheet as PNG bytes."""
    positions = layout(cells)
    image = Image.new("RGB", sheet_size(positions), BG)
    draw = ImageDraw.Draw(image)
    font = load_font(13, font_path)
    draw.text((MARGIN_L, 10), title, fill=TEXT, font=load_font(16, font_path))
    by_number = {cell.number: cell for cell in cells}
    for cell in cells:
        if cell.parent_number in by_number:
            _connector(draw, positions[cell.parent_number], positions[cell.number])
        elif cell.parent_number is not None:
            _off_sheet_parent(draw, positions[cell.number], cell.parent_number, font)
    for cell in cells:
        _cell(image, draw, cell, positions[cell.number], font)
    out = io.BytesIO()
    image.save(out, "PNG", optimize=True)
    return out.getvalue()


def _connector(draw: ImageDraw.ImageDraw, parent: tuple[int, int], child: tuple[int, int]) -> None:
    px, py = cell_origin(*parent)
    cx, cy = cell_origin(*child)
    start = (px + THUMB, py + THUMB // 2)
    middle = px + THUMB + GAP // 2
    end_y = cy + THUMB // 2
    draw.line([start, (middle, start[1]), (middle, end_y), (cx - 2, end_y)], fill=EDGE, width=3)
    draw.polygon([(cx - 2, end_y), (cx - 9, end_y - 5), (cx - 9, end_y + 5)], fill=EDGE)


def _off_sheet_parent(
    draw: ImageDraw.ImageDraw, at: tuple[int, int], parent_number: int, font: ImageFont.FreeTypeFont
) -> None:
    x, y = cell_origin(*at)
    mid = y + THUMB // 2
    draw.line([(6, mid), (x - 2, mid)], fill=EDGE, width=2)
    draw.text((6, mid - 18), f"#{parent_number}", fill=MUTED, font=font)


def _frame_colour(cell: SheetCell) -> str:
    if cell.deleted:
        return DELETED
    if cell.state in ("failed", "cancelled"):
        return FAILED if cell.state == "failed" else DELETED
    if cell.state == "pending":
        return PENDING
    return HEAD if cell.head else PANEL


def _cell(
    image: Image.Image, draw: ImageDraw.ImageDraw, cell: SheetCell, at: tuple[int, int],
    font: ImageFont.FreeTypeFont,
) -> None:
    x, y = cell_origin(*at)
    draw.rectangle([(x, y), (x + THUMB - 1, y + THUMB - 1)], fill=PANEL)
    thumb = None if cell.deleted else _thumbnail(cell.thumbnail)  # a deleted turn shows nothing
    if thumb is not None:
        image.paste(thumb, (x + (THUMB - thumb.width) // 2, y + (THUMB - thumb.height) // 2))
    if cell.deleted or cell.state in ("failed", "cancelled"):
        colour = FAILED if cell.state == "failed" and not cell.deleted else MUTED
        draw.line([(x + 12, y + 12), (x + THUMB - 13, y + THUMB - 13)], fill=colour, width=5)
        draw.line([(x + 12, y + THUMB - 13), (x + THUMB - 13, y + 12)], fill=colour, width=5)
    elif cell.state == "pending":
        for n in range(3):
            cx = x + THUMB // 2 - 24 + 24 * n
            draw.ellipse([(cx - 5, y + THUMB // 2 - 5), (cx + 5, y + THUMB // 2 + 5)], fill=PENDING)
    width = 6 if cell.head else 3
    draw.rectangle([(x, y), (x + THUMB - 1, y + THUMB - 1)], outline=_frame_colour(cell), width=width)
    if cell.head:
        draw.polygon([(x + THUMB - 34, y), (x + THUMB, y), (x + THUMB, y + 34)], fill=HEAD)
    badge = f"#{cell.number}"
    badge_w = int(font.getlength(badge)) + 10
    draw.rectangle([(x, y), (x + badge_w, y + 20)], fill=_frame_colour(cell) if cell.head else PANEL)
    draw.text((x + 5, y + 3), badge, fill="#000000" if cell.head else TEXT, font=font)
    if cell.deleted:
        return  # a crossed-out placeholder: no prompt, no author
    lines = _wrap(cell.caption, font, CELL_W - 8, 2)
    for n, line in enumerate(lines):
        draw.text((x, y + THUMB + 4 + 16 * n), line, fill=TEXT, font=font)
    author = _clip(cell.author, font, CELL_W - 8)
    draw.text((x, y + THUMB + 4 + 16 * 2), author, fill=MUTED, font=font)


def make_thumbnail(data: bytes) -> bytes | None:
    """A small JPEG of an image, for caching between pages (None if it cannot be read)."""
    thumb = _thumbnail(data)
    if thumb is None:
        return None
    out = io.BytesIO()
    thumb.save(out, "JPEG", quality=85)
    return out.getvalue()


def _thumbnail(data: bytes | None) -> Image.Image | None:
    if not data:
        return None
    try:
        with Image.open(io.BytesIO(data)) as source:
            source.draft("RGB", (THUMB, THUMB))
            thumb = source.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError):
        return None
    thumb.thumbnail((THUMB - 6, THUMB - 6))
    return thumb


def _clip(text: str, font: ImageFont.FreeTypeFont, width: int) -> str:
    if font.getlength(text) <= width:
        return text
    while text and font.getlength(text + "…") > width:
        text = text[:-1]
    return text.rstrip() + "…"


def _wrap(text: str, font: ImageFont.FreeTypeFont, width: int, max_lines: int) -> list[str]:
    """Word-wrap `text` into at most `max_lines` lines of `width` pixels, the last one clipped."""
    words = " ".join(text.split()).split(" ")
    lines: list[str] = []
    current = ""
    for index, word in enumerate(words):
        candidate = f"{current} {word}".strip()
        if font.getlength(candidate) <= width or not current:
            current = candidate
            continue
        lines.append(_clip(current, font, width))
        if len(lines) == max_lines - 1:
            return [*lines, _clip(" ".join([word, *words[index + 1:]]), font, width)]
        current = word
    lines.append(_clip(current, font, width))
    return lines[:max_lines]
