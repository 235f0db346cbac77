"""A dependency-free SVG bar chart of the medians, on a log scale, limits beside paywarden.

Each verified scenario is one bar; a paywarden scenario (or any scenario with a limit) also
shows its limit as a pale bar behind it, so the gap is the ratio. Failed and skipped
scenarios have no bar, only their name.
"""

from __future__ import annotations

import math
from html import escape
from pathlib import Path

from paywarden.bench.model import ScenarioResult

__all__ = ["write_svg"]

_COLOURS = {"storage": "#4e79a7", "crypto": "#59a14f", "http": "#f28e2b", "paywarden": "#e15759"}
_ROW = 26
_LABEL_W = 330
_BAR_W = 520
_TOP = 44


def write_svg(results: list[ScenarioResult], path: Path, *, title: str) -> None:
    values = [r.median for r in results if r.median] + [
        r.limit_per_s for r in results if r.limit_per_s
    ]
    low = math.floor(math.log10(min(values))) if values else 0
    high = math.ceil(math.log10(max(values))) if values else 1
    high = max(high, low + 1)

    def x(value: float) -> float:
        return _LABEL_W + _BAR_W * (math.log10(value) - low) / (high - low)

    height = _TOP + _ROW * len(results) + 30
    width = _LABEL_W + _BAR_W + 260
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'font-family="sans-serif" font-size="12">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="10" y="20" font-size="14" font-weight="bold">{escape(title)}</text>',
        '<text x="10" y="36" fill="#555">median per second, log scale; pale bar: the '
        "scenario's limit</text>",
    ]
    for decade in range(low, high + 1):
        gx = x(10.0**decade)
        parts.append(
            f'<line x1="{gx:.1f}" y1="{_TOP}" x2="{gx:.1f}" y2="{height - 24}" stroke="#ddd"/>'
            f'<text x="{gx:.1f}" y="{height - 10}" text-anchor="middle" fill="#555">'
            f"{10**decade:,}</text>"
        )
    for index, result in enumerate(results):
        y = _TOP + index * _ROW
        colour = _COLOURS.get(result.group, "#888")
        parts.append(
            f'<text x="{_LABEL_W - 8}" y="{y + 16}" text-anchor="end">{escape(result.key)}</text>'
        )
        if result.limit_per_s:
            parts.append(
                f'<rect x="{_LABEL_W}" y="{y + 4}" width="{x(result.limit_per_s) - _LABEL_W:.1f}" '
                f'height="16" fill="{colour}" opacity="0.25"/>'
            )
        if result.median:
            end = x(result.median)
            ratio = f" ({result.ratio:.2f} of limit)" if result.ratio is not None else ""
            if result.key.endswith("_half_peak"):  # its figure is the tail latency
                ratio += f", p99 {result.to_json()['p99_ms']:.1f} ms"
            parts.append(
                f'<rect x="{_LABEL_W}" y="{y + 6}" width="{max(end - _LABEL_W, 1):.1f}" '
                f'height="12" fill="{colour}"/>'
                f'<text x="{max(end, x(result.limit_per_s or result.median)) + 4:.1f}" '
                f'y="{y + 16}">{result.median:,.0f} {escape(result.unit)}{ratio}</text>'
            )
        else:
            reason = "skipped" if result.skipped else "FAILED verification"
            parts.append(f'<text x="{_LABEL_W + 4}" y="{y + 16}" fill="#c00">{reason}</text>')
    parts.append("</svg>")
    path.write_text("\n".join(parts) + "\n")
