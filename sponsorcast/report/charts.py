"""The report's charts as SVG, drawn by pygal (docs/reports.md says why pygal).

An SVG here is static: pygal's tooltip script is turned off (``js=[]``, it would come from a
CDN), and the inline script with its configuration and its comments are dropped, so the chart
draws the same offline, in print and in any browser, and the report points nowhere else.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

DEFAULT_ACCENT = "#2563eb"
SECOND = "#f59e0b"
_DROPPED = re.compile(r"<!--.*?-->|<script\b.*?</script>", re.S)
FUNNEL_STAGES = (
    ("Audience", "total_recipients"),
    ("Sent", "sent"),
    ("Delivered", "delivered"),
    ("Opened", "opened"),
    ("Clicked", "clicked"),
)


def _style(accent: str | None) -> Any:
    from pygal.style import Style

    return Style(
        background="white",
        plot_background="white",
        foreground="#1f2937",
        foreground_strong="#111827",
        foreground_subtle="#d1d5db",
        colors=(accent or DEFAULT_ACCENT, SECOND),
        font_family="system-ui, -apple-system, 'Segoe UI', Roboto, Arial, sans-serif",
        label_font_size=12,
        major_label_font_size=12,
        legend_font_size=13,
        value_font_size=12,
        title_font_size=15,
    )


def _options(accent: str | None, **extra: Any) -> dict[str, Any]:
    return {
        "js": [],
        "disable_xml_declaration": True,
        "style": _style(accent),
        "width": 760,
        "height": 300,
        "margin": 12,
        "legend_at_bottom": True,
        "truncate_legend": -1,
        **extra,
    }


def _svg(chart: Any) -> str:
    return _DROPPED.sub("", str(chart.render(is_unicode=True)))


def funnel_chart(funnel: dict[str, int], accent: str | None) -> str:
    """Audience → sent → delivered → opened → clicked as horizontal bars."""
    import pygal

    chart = pygal.HorizontalBar(
        **_options(accent, show_legend=False, print_values=True, height=240)
    )
    chart.x_labels = [label for label, _ in reversed(FUNNEL_STAGES)]
    chart.add("Recipients", [funnel[key] for _, key in reversed(FUNNEL_STAGES)])
    return _svg(chart)


def timeline_chart(
    labels: Sequence[str], opened: Sequence[int], clicked: Sequence[int], accent: str | None
) -> str:
    """First opens and first clicks per bucket, as bars side by side."""
    import pygal

    chart = pygal.Bar(
        **_options(
            accent,
            x_label_rotation=-35,
            show_minor_x_labels=False,
            y_title="recipients",
            min_scale=1,
        )
    )
    chart.x_labels = list(labels)
    every = max(1, len(labels) // 12)
    chart.x_labels_major = list(labels[::every])
    chart.add("First opens", list(opened))
    chart.add("First clicks", list(clicked))
    return _svg(chart)


def campaigns_chart(
    names: Sequence[str], opens: Sequence[float], clicks: Sequence[float], accent: str | None
) -> str:
    """Open and click rates of a sponsor's campaigns side by side."""
    import pygal

    chart = pygal.Bar(
        **_options(accent, y_title="% of sent", x_label_rotation=-20, print_values=False)
    )
    chart.x_labels = list(names)
    chart.add("Open rate", list(opens))
    chart.add("Click rate", list(clicks))
    return _svg(chart)


__all__ = ["FUNNEL_STAGES", "campaigns_chart", "funnel_chart", "timeline_chart"]
