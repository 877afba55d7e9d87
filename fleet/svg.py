"""Inline SVG charts for the report (pure string builders; no JavaScript, nothing fetched)."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from html import escape

PALETTE = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1",
           "#ff9da7", "#9c755f")
UNKNOWN = "#c8c8c8"
VISITORS, WATCHERS = "#9ecae1", "#2b6ca3"


def nice_max(value: float) -> float:
    """The smallest 1, 2 or 5 times a power of ten that is at least ``value`` (1 for 0)."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    return next(m * power for m in (1, 2, 5, 10) if m * power >= value)


def _fmt(v: float) -> str:
    if v >= 10000:
        return f"{v / 1000:.0f}k"
    if v >= 1000:
        return f"{v / 1000:.1f}k"
    return f"{v:g}"


def hourly_chart(hours: list[int], visitors: list[int], watchers: list[int],
                 width: int = 1100, height: int = 170) -> str:
    """Visitors per hour as light bars with the watchers among them as dark bars.

    Args:
        hours: epoch seconds at the start of each hour (UTC), consecutive.
    """
    left, right, top, bottom = 44, 8, 8, 22
    plot_w, plot_h = width - left - right, height - top - bottom
    top_v = nice_max(max(visitors, default=0))
    n = max(1, len(hours))
    step = plot_w / n
    bar = max(1.0, step * 0.8)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img">']
    for frac in (0, 0.5, 1):
        y = top + plot_h * (1 - frac)
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" '
                     f'stroke="#e3e3e3"/>'
                     f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" '
                     f'class="tick">{_fmt(top_v * frac)}</text>')
    for i, h in enumerate(hours):
        x = left + i * step
        if h % 86400 == 0:
            day = datetime.fromtimestamp(h, UTC)
            parts.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top}" y2="{top + plot_h + 4}" '
                         f'stroke="#bdbdbd"/><text x="{x + 3:.1f}" y="{height - 6}" '
                         f'class="tick">{day:%a %d %b}</text>')
        for value, color in ((visitors[i], VISITORS), (watchers[i], WATCHERS)):
            if value:
                bh = plot_h * value / top_v
                parts.append(f'<rect x="{x:.1f}" y="{top + plot_h - bh:.1f}" width="{bar:.1f}" '
                             f'height="{bh:.1f}" fill="{color}"/>')
    parts.append("</svg>")
    return "".join(parts)


def share_bar(rows: list[tuple[str, int, float]], width: int = 1100) -> str:
    """A 100 % bar of shares with a legend; ``rows`` are ``(label, count, percent)``."""
    height, bar_h = 58, 26
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img">']
    x, colors = 0.0, iter(PALETTE)
    legend_x = 0.0
    for label, _count, pct in rows:
        color = UNKNOWN if label == "unknown" else next(colors, UNKNOWN)
        w = width * pct / 100.0
        if w > 0:
            parts.append(f'<rect x="{x:.1f}" y="0" width="{w:.1f}" height="{bar_h}" '
                         f'fill="{color}"><title>{escape(label)}: {pct:.1f} %</title></rect>')
            if w > 44:
                parts.append(f'<text x="{x + w / 2:.1f}" y="{bar_h / 2 + 5:.1f}" '
                             f'text-anchor="middle" class="inbar">{pct:.0f} %</text>')
        x += w
        parts.append(f'<rect x="{legend_x:.1f}" y="{bar_h + 14}" width="11" height="11" '
                     f'fill="{color}"/><text x="{legend_x + 15:.1f}" y="{bar_h + 24}" '
                     f'class="legend">{escape(label)} {pct:.1f} %</text>')
        legend_x += 24 + 7.2 * len(f"{label} {pct:.1f} %")
    parts.append("</svg>")
    return "".join(parts)


def histogram(labels: list[str], values: list[int], color: str = "#4e79a7",
              width: int = 530, height: int = 200) -> str:
    """Vertical bars with their values on top and their labels below."""
    left, top, bottom = 8, 18, 34
    plot_h = height - top - bottom
    total = sum(values) or 1
    top_v = max(values, default=0) or 1
    step = (width - 2 * left) / max(1, len(values))
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img">']
    for i, (label, v) in enumerate(zip(labels, values, strict=True)):
        x = left + i * step
        bh = plot_h * v / top_v
        parts.append(f'<rect x="{x + step * 0.1:.1f}" y="{top + plot_h - bh:.1f}" '
                     f'width="{step * 0.8:.1f}" height="{bh:.1f}" fill="{color}"/>'
                     f'<text x="{x + step / 2:.1f}" y="{top + plot_h - bh - 4:.1f}" '
                     f'text-anchor="middle" class="tick">{100 * v / total:.0f} %</text>'
                     f'<text x="{x + step / 2:.1f}" y="{height - 14}" text-anchor="middle" '
                     f'class="tick">{escape(label)}</text>')
    parts.append(f'<line x1="{left}" x2="{width - left}" y1="{top + plot_h}" '
                 f'y2="{top + plot_h}" stroke="#9e9e9e"/></svg>')
    return "".join(parts)
