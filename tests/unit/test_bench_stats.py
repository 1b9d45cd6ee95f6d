"""The bench's arithmetic: percentiles, run figures, the sustained-rate rule, memory trends."""

from __future__ import annotations

import math

import pytest

from bench.stats import (
    INF,
    Outcome,
    RunFigures,
    Spread,
    fmt_seconds,
    highest_sustained,
    memory_trend,
    percentile,
    rate_sustained,
    run_figures,
    run_verdict,
    saturated,
    within_factor,
)

pytestmark = pytest.mark.unit


def test_percentiles_are_nearest_rank_values_that_really_occurred() -> None:
    values = [float(n) for n in range(1, 101)]  # 1 .. 100
    assert percentile(values, 50) == 50
    assert percentile(values, 99) == 99
    assert percentile(values, 99.9) == 100
    assert percentile(values, 100) == 100
    assert percentile([7.0], 99.9) == 7.0
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0  # unsorted input


def test_a_message_that_never_arrived_keeps_the_tail_infinite() -> None:
    arrived = [0.01] * 99
    assert percentile([*arrived, INF], 99) == 0.01
    assert percentile([*arrived, INF], 99.9) == INF
    assert percentile([*arrived[:97], INF, INF, INF], 99) == INF


def test_percentile_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="no values"):
        percentile([], 50)
    with pytest.raises(ValueError, match="q must be"):
        percentile([1.0], 0)


def steady_outcomes(
    count: int,
    rate: float,
    latency: float,
    *,
    lost: int = 0,
    late_start: float = 0.0,
    status: int = 200,
) -> list[Outcome]:
    outcomes = []
    for n in range(count):
        intended = 100.0 + n / rate
        arrived = None if n >= count - lost else intended + late_start + latency
        outcomes.append(Outcome(intended, intended + late_start, status, arrived))
    return outcomes


def test_latency_counts_from_the_intended_time_not_the_actual_send() -> None:
    # The generator fell 2 s behind: the system answered in 10 ms, the customer waited 2.01 s.
    figures = run_figures(
        steady_outcomes(100, 100, 0.010, late_start=2.0), target_rate=100, duration=1
    )
    assert figures.latency.p50 == pytest.approx(2.010)
    assert figures.generator_lag_p99 == pytest.approx(2.0)


def test_figures_of_a_run_that_kept_up() -> None:
    figures = run_figures(steady_outcomes(1000, 100, 0.050), target_rate=100, duration=10)
    assert figures.scheduled == figures.accepted == figures.drained == 1000
    assert figures.failed == 0
    assert figures.send_rate == pytest.approx(100)
    assert figures.drained_rate == pytest.approx(1000 / (9.99 + 0.05 + 0.01))
    assert figures.latency.p99 == pytest.approx(0.050)
    assert run_verdict(figures, p99_limit=0.250).sustained


def test_a_rate_above_capacity_shows_as_a_growing_latency_and_a_lower_drained_rate() -> None:
    # 200/s offered to a system that completes 50/s: message n waits n/50 - n/200 s.
    outcomes = [
        Outcome(100 + n / 200, 100 + n / 200, 200, 100 + n / 50 + 0.01) for n in range(2000)
    ]
    figures = run_figures(outcomes, target_rate=200, duration=10)
    assert figures.drained_rate == pytest.approx(50, rel=0.01)
    assert figures.p50_last_third > 4 * figures.p50_first_third
    verdict = run_verdict(figures, p99_limit=0.250)
    assert not verdict.sustained
    assert any(reason.startswith("p99") for reason in verdict.reasons)


def test_every_reason_a_run_is_not_sustained_is_named() -> None:
    lost = run_figures(steady_outcomes(100, 100, 0.01, lost=1), target_rate=100, duration=1)
    assert run_verdict(lost, p99_limit=0.25).reasons == ("1 never reached the read model",)
    refused = run_figures(steady_outcomes(100, 100, 0.01, status=503), target_rate=100, duration=1)
    assert "100 of 100 requests not accepted" in run_verdict(refused, p99_limit=0.25).reasons
    slow_sender = run_figures(
        [Outcome(n / 100, n / 50, 200, n / 50 + 0.01) for n in range(100)],
        target_rate=100,
        duration=1,
    )
    reasons = run_verdict(slow_sender, p99_limit=10).reasons
    assert reasons == ("sent 50/s of 100/s",)


def figures_with(p99: float, rate: float = 100, drained_rate: float | None = None) -> RunFigures:
    base = run_figures(steady_outcomes(100, rate, p99), target_rate=rate, duration=100 / rate)
    return RunFigures(
        **{
            **base.__dict__,
            "latency": base.latency.__class__(100, 100, p99, p99, p99, p99),
            "drained_rate": rate if drained_rate is None else drained_rate,
        }
    )


def test_a_rate_is_sustained_when_most_of_its_runs_are() -> None:
    assert rate_sustained(
        [figures_with(0.1), figures_with(0.3), figures_with(0.2)], p99_limit=0.25
    ).sustained
    verdict = rate_sustained(
        [figures_with(0.1), figures_with(0.3), figures_with(0.4)], p99_limit=0.25
    )
    assert not verdict.sustained
    assert verdict.reasons == ("2 of 3 runs not sustained", "p99 over the limit")
    assert not rate_sustained([figures_with(0.1), figures_with(0.3)], p99_limit=0.25).sustained
    assert not rate_sustained([], p99_limit=0.25).sustained


def test_the_highest_sustained_rate_ignores_rates_that_were_not() -> None:
    sustained = rate_sustained([figures_with(0.1)], p99_limit=0.25)
    failed = rate_sustained([figures_with(0.9)], p99_limit=0.25)
    assert highest_sustained({100: sustained, 500: sustained, 1000: failed}) == 500
    assert highest_sustained({100: failed}) is None


def test_saturated_means_most_runs_drained_under_half_the_target() -> None:
    assert saturated([figures_with(1, 200, 45), figures_with(1, 200, 60)], target_rate=200)
    assert not saturated([figures_with(1, 200, 150), figures_with(1, 200, 45)], target_rate=200)
    assert not saturated([], target_rate=200)


def test_spread_is_the_median_and_the_range() -> None:
    spread = Spread.of([3.0, 1.0, 2.0])
    assert (spread.median, spread.low, spread.high) == (2.0, 1.0, 3.0)
    assert Spread.of([1.0, INF, INF]).median == INF
    assert math.isnan(Spread.of([]).median)


def test_within_a_factor_of_the_baseline() -> None:
    assert within_factor(0.2, 0.1, 2)
    assert not within_factor(0.21, 0.1, 2)
    assert not within_factor(INF, 0.1, 2)  # lost messages are never within anything
    assert within_factor(5.0, INF, 2)  # the baseline lost some too: nothing to compare


def test_a_flat_memory_curve_after_warm_up_is_flat_and_a_leak_is_not() -> None:
    warm_then_flat = [(t, 50 + min(t, 60) / 2 + (t % 7) * 0.1) for t in range(0, 600, 5)]
    trend = memory_trend(warm_then_flat)
    assert trend.flat
    assert trend.peak_mb == pytest.approx(max(mb for _, mb in warm_then_flat))
    leak = [(t, 80 + t * 0.1) for t in range(0, 600, 5)]  # 6 MB/min
    leaking = memory_trend(leak)
    assert not leaking.flat
    assert leaking.slope_mb_per_min == pytest.approx(6.0)
    with pytest.raises(ValueError, match="too few"):
        memory_trend(leak[:5])


def test_latencies_print_in_ms_then_seconds() -> None:
    assert fmt_seconds(0.0764) == "76 ms"
    assert fmt_seconds(26.8) == "26.8 s"
    assert fmt_seconds(INF) == "∞"
    assert fmt_seconds(math.nan) == "-"
