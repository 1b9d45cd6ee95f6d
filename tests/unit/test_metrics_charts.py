"""The metrics page's bar charts: every day of the period has its slot, heights are to scale."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from services.gateway.web.charts import PLOT_HEIGHT, TOP, charts_for, minutes, per_day

pytestmark = pytest.mark.unit

FIRST, LAST = date(2027, 3, 1), date(2027, 3, 3)


def row(day: date, **figures: Any) -> dict[str, Any]:
    return {"day": day, "queue": "group", "group_name": "Ventas", **figures}


def test_days_without_figures_are_zeros_and_rows_of_a_day_add_up() -> None:
    rows = [row(FIRST, handed_off=2), row(FIRST, handed_off=1), row(LAST, handed_off=4)]
    totals = per_day(rows, FIRST, LAST)
    assert [totals[d].get("handed_off", 0) for d in sorted(totals)] == [3, 0, 4]


def test_bars_are_to_the_scale_of_the_largest_value() -> None:
    rows = [row(FIRST, handed_off=2, resolutions=1), row(LAST, handed_off=4, resolutions=4)]
    conversations = charts_for(rows, FIRST, LAST)[0]
    handed = [bar for bar in conversations.bars if bar.series == 0]
    assert [bar.value for bar in handed] == [2, 0, 4]
    assert [bar.height for bar in handed] == [PLOT_HEIGHT / 2, 0, PLOT_HEIGHT]
    assert handed[2].y == TOP  # the tallest reaches the top of the plot
    assert handed[0].x < handed[1].x < handed[2].x
    assert conversations.top_label == "4"
    assert "2027-03-03 · handed off: 4" in [bar.label for bar in handed]


def test_average_times_are_per_day_and_labelled_as_durations() -> None:
    rows = [
        row(FIRST, queue_waits=2, queue_wait_seconds=600.0),
        row(LAST, queue_waits=1, queue_wait_seconds=7200.0),
    ]
    times = charts_for(rows, FIRST, LAST)[2]
    waits = [bar.value for bar in times.bars if bar.series == 0]
    assert waits == [300.0, 0.0, 7200.0]
    assert times.top_label == "2.0 h"
    assert minutes(42) == "42 s"
    assert minutes(210) == "3.5 min"


def test_an_empty_period_draws_nothing() -> None:
    assert all(chart.empty for chart in charts_for([], FIRST, LAST))
