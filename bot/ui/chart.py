"""A 30-day usage chart (images as bars, spend as a line) drawn with Pillow. Blocking: call it
with `asyncio.to_thread`."""

from __future__ import annotations

import datetime as dt
import io

from PIL import Image, ImageDraw

from bot.core.models import DailyUsage

WIDTH, HEIGHT = 900, 360
MARGIN_L, MARGIN_R, MARGIN_T, MARGIN_B = 60, 70, 40, 50
BG, GRID, BAR, LINE, TEXT = "#2b2d31", "#3f4147", "#5865f2", "#57f287", "#dbdee1"


def usage_chart(days: list[DailyUsage], *, today: dt.date, title: str, span: int = 30) -> bytes:
    """PNG bytes: one bar per day for images, a line for spend, for the `span` days to `today`."""
    by_day = {d.day: d for d in days}
    dates = [today - dt.timedelta(days=span - 1 - i) for i in range(span)]
    images = [by_day[d.isoformat()].images if d.isoformat() in by_day else 0 for d in dates]
    spend = [by_day[d.isoformat()].cost_usd if d.isoformat() in by_day else 0.0 for d in dates]
    max_images = max(max(images), 1)
    max_spend = max(max(spend), 0.01)

    image = Image.new("RGB", (WIDTH, HEIGHT), BG)
    draw = ImageDraw.Draw(image)
    plot_w = WIDTH - MARGIN_L - MARGIN_R
    plot_h = HEIGHT - MARGIN_T - MARGIN_B
    draw.text((MARGIN_L, 12), title, fill=TEXT)
    for i in range(5):
        y = MARGIN_T + plot_h * i / 4
        draw.line([(MARGIN_L, y), (WIDTH - MARGIN_R, y)], fill=GRID)
        draw.text((8, y - 6), f"{max_images * (4 - i) / 4:.0f}", fill=BAR)
        draw.text((WIDTH - MARGIN_R + 6, y - 6), f"${max_spend * (4 - i) / 4:.2f}", fill=LINE)
    slot = plot_w / span
    points = []
    for i, (count, cost) in enumerate(zip(images, spend, strict=True)):
        x0 = MARGIN_L + i * slot + slot * 0.15
        x1 = MARGIN_L + (i + 1) * slot - slot * 0.15
        top = MARGIN_T + plot_h * (1 - count / max_images)
        if count:
            draw.rectangle([(x0, top), (x1, MARGIN_T + plot_h)], fill=BAR)
        points.append((MARGIN_L + (i + 0.5) * slot, MARGIN_T + plot_h * (1 - cost / max_spend)))
        if i % 5 == 0 or i == span - 1:
            draw.text((x0, HEIGHT - MARGIN_B + 8), dates[i].strftime("%m-%d"), fill=TEXT)
    draw.line(points, fill=LINE, width=3)
    out = io.BytesIO()
    image.save(out, "PNG", optimize=True)
    return out.getvalue()
