"""Bar charts for the metrics page, laid out here and drawn by the template as inline SVG.

Pure layout (no charting library, no CDN, no script): each day of the period gets a slot;
each series a bar in it, scaled to the largest value of the chart. The page shows the same
numbers in a table beside each chart, for screen readers and for copying.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

WIDTH, HEIGHT = 720, 200
LEFT, BOTTOM, TOP = 44, 22, 10
PLOT_HEIGHT = HEIGHT - BOTTOM - TOP


@dataclass(frozen=True)
class Bar:
    series: int  # which series: the template's colour and the legend entry
    x: float
    y: float
    width: float
    height: float
    value: float
    label: str  # what the bar's tooltip says


@dataclass(frozen=True)
class Tick:
    x: float
    label: str


@dataclass(frozen=True)
class Chart:
    title: str
    unit: str
    series: tuple[str, ...]
    bars: tuple[Bar, ...]
    ticks: tuple[Tick, ...]  # day labels under the slots (thinned on long periods)
    top: float  # the value the full height stands for
    top_label: str
    width: int = WIDTH
    height: int = HEIGHT
    plot_height: int = PLOT_HEIGHT
    left: int = LEFT
    top_margin: int = TOP

    @property
    def empty(self) -> bool:
        return all(bar.value == 0 for bar in self.bars)


def days_of(first: date, last: date) -> list[date]:
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def per_day(rows: list[dict[str, Any]], first: date, last: date) -> dict[date, dict[str, float]]:
    """The rows' figures summed per day (every group and member together), every day of the
    period present (zeros where nothing happened)."""
    totals: dict[date, dict[str, float]] = {day: {} for day in days_of(first, last)}
    for row in rows:
        day_totals = totals.setdefault(row["day"], {})
        for name, value in row.items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                day_totals[name] = day_totals.get(name, 0) + value
    return totals


def average(figures: dict[str, float], seconds: str, count: str) -> float:
    reached = figures.get(count, 0)
    return figures.get(seconds, 0) / reached if reached else 0.0


def bar_chart(
    title: str,
    unit: str,
    days: list[date],
    series: list[tuple[str, list[float]]],
    *,
    format_value: Any = None,
) -> Chart:
    """Bars for each day, one per series, side by side; heights relative to the largest."""
    largest = max((value for _, values in series for value in values), default=0.0)
    top = largest if largest > 0 else 1.0
    slot = (WIDTH - LEFT) / max(len(days), 1)
    bar_width = max(slot * 0.8 / max(len(series), 1), 1.0)
    bars: list[Bar] = []
    show = format_value or (lambda value: f"{value:g}")
    for index, (name, values) in enumerate(series):
        for position, (day, value) in enumerate(zip(days, values, strict=True)):
            height = PLOT_HEIGHT * value / top
            bars.append(
                Bar(
                    series=index,
                    x=round(LEFT + position * slot + slot * 0.1 + index * bar_width, 2),
                    y=round(TOP + PLOT_HEIGHT - height, 2),
                    width=round(bar_width, 2),
                    height=round(height, 2),
                    value=value,
                    label=f"{day.isoformat()} · {name}: {show(value)}",
                )
            )
    every = max(1, len(days) // 10)  # at most ten or so labels under the axis
    ticks = tuple(
        Tick(x=round(LEFT + position * slot + slot / 2, 2), label=day.strftime("%d %b"))
        for position, day in enumerate(days)
        if position % every == 0
    )
    return Chart(
        title=title,
        unit=unit,
        series=tuple(name for name, _ in series),
        bars=tuple(bars),
        ticks=ticks,
        top=top,
        top_label=show(top),
    )


def minutes(seconds: float) -> str:
    """A duration the way the page shows it: ``42 s``, ``3.5 min``, ``2.1 h``."""
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def charts_for(rows: list[dict[str, Any]], first: date, last: date) -> list[Chart]:
    """The page's three charts: conversations, closes by reason, and the times."""
    totals = per_day(rows, first, last)
    days = days_of(first, last)

    def series(name: str) -> list[float]:
        return [totals[day].get(name, 0) for day in days]

    return [
        bar_chart(
            "Conversations per day",
            "conversations",
            days,
            [
                ("handed off", series("handed_off")),
                ("resolved", series("resolutions")),
            ],
        ),
        bar_chart(
            "Closes per day, by who closed",
            "conversations",
            days,
            [
                ("by the agent", series("closed_by_agent")),
                ("by an admin", series("closed_by_admin")),
                ("by the flow", series("closed_by_flow")),
                ("expired", series("expired")),
            ],
        ),
        bar_chart(
            "Average times per day",
            "minutes",
            days,
            [
                (
                    "waiting in queue",
                    [average(totals[d], "queue_wait_seconds", "queue_waits") for d in days],
                ),
                (
                    "first response",
                    [average(totals[d], "first_response_seconds", "first_responses") for d in days],
                ),
                (
                    "resolution",
                    [average(totals[d], "resolution_seconds", "resolutions") for d in days],
                ),
            ],
            format_value=minutes,
        ),
    ]
