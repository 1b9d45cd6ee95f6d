"""The arithmetic of the bench (pure): percentiles, run figures, the sustained-rate rule,
medians with their spread, and whether a memory curve is flat.

A message that never arrived has latency ``math.inf``: it stays in the population, so a
run that lost or never drained 1 % of its messages cannot show a finite p99.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field

INF = math.inf
# A run "met its send rate" when the generator started at least this share of the
# scheduled requests per second (the open-loop schedule itself is exact).
SEND_RATE_TOLERANCE = 0.95


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile: the smallest value with at least ``q`` % of them at or below.

    No interpolation: every figure printed is a latency some message really had (or
    ``inf`` for one that never arrived).
    """
    if not values:
        raise ValueError("percentile of no values")
    if not 0 < q <= 100:
        raise ValueError(f"q must be in (0, 100], got {q}")
    ordered = sorted(values)
    rank = math.ceil(q / 100 * len(ordered))
    return ordered[max(rank, 1) - 1]


@dataclass(frozen=True)
class Latencies:
    """Percentiles of one population (seconds; ``inf`` where a message never arrived)."""

    count: int
    arrived: int
    p50: float
    p99: float
    p999: float
    max: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Latencies:
        if not values:
            return cls(0, 0, INF, INF, INF, INF)
        return cls(
            count=len(values),
            arrived=sum(1 for v in values if math.isfinite(v)),
            p50=percentile(values, 50),
            p99=percentile(values, 99),
            p999=percentile(values, 99.9),
            max=max(values),
        )


@dataclass(frozen=True)
class Outcome:
    """One scheduled message: when it was meant to go, what happened, when it showed up."""

    intended: float
    started: float | None  # None: never sent (its predecessor failed)
    status: int  # HTTP status; 0 for a transport error or a time-out; -1 never sent
    arrived: float | None


@dataclass(frozen=True)
class RunFigures:
    """What one run at one target rate measured."""

    target_rate: float
    duration: float
    scheduled: int
    accepted: int  # answered 2xx
    failed: int  # any other answer, a transport error, or never sent
    send_rate: float  # requests started per second over the schedule's span
    drained: int  # arrived in the read model within the drain window
    drained_rate: float
    generator_lag_p99: float  # how late the generator started requests (its own health)
    latency: Latencies
    # p50 of the first and last third of the schedule: a latency that grows across the
    # run means a queue that grows, i.e. the rate is above capacity.
    p50_first_third: float
    p50_last_third: float


def run_figures(outcomes: Sequence[Outcome], *, target_rate: float, duration: float) -> RunFigures:
    if not outcomes:
        raise ValueError("a run with no messages")
    ordered = sorted(outcomes, key=lambda o: o.intended)
    first = ordered[0].intended
    slot = 1.0 / target_rate
    started = [o.started for o in ordered if o.started is not None]
    span = (max(started) - first + slot) if started else INF
    arrivals = [o.arrived for o in ordered if o.arrived is not None]
    drain_span = (max(arrivals) - first + slot) if arrivals else INF
    latencies = [latency_of(o) for o in ordered]
    third = max(len(ordered) // 3, 1)
    return RunFigures(
        target_rate=target_rate,
        duration=duration,
        scheduled=len(ordered),
        accepted=sum(1 for o in ordered if 200 <= o.status < 300),
        failed=sum(1 for o in ordered if not 200 <= o.status < 300),
        send_rate=len(started) / span if started else 0.0,
        drained=len(arrivals),
        drained_rate=len(arrivals) / drain_span if arrivals else 0.0,
        generator_lag_p99=(
            percentile([o.started - o.intended for o in ordered if o.started is not None], 99)
            if started
            else INF
        ),
        latency=Latencies.of(latencies),
        p50_first_third=percentile(latencies[:third], 50),
        p50_last_third=percentile(latencies[-third:], 50),
    )


def latency_of(outcome: Outcome) -> float:
    """From the intended send time (not the actual one: no coordinated omission)."""
    if outcome.arrived is None:
        return INF
    return max(outcome.arrived - outcome.intended, 0.0)


@dataclass(frozen=True)
class Verdict:
    sustained: bool
    reasons: tuple[str, ...] = ()


def run_verdict(run: RunFigures, *, p99_limit: float) -> Verdict:
    """A run sustained its rate when the generator met it, every message was accepted and
    reached the read model, and p99 stayed within ``p99_limit`` seconds."""
    reasons: list[str] = []
    if run.send_rate < SEND_RATE_TOLERANCE * run.target_rate:
        reasons.append(f"sent {run.send_rate:.0f}/s of {run.target_rate:.0f}/s")
    if run.failed:
        reasons.append(f"{run.failed} of {run.scheduled} requests not accepted")
    if run.drained < run.scheduled:
        reasons.append(f"{run.scheduled - run.drained} never reached the read model")
    if run.latency.p99 > p99_limit:
        reasons.append(f"p99 {fmt_seconds(run.latency.p99)} > {fmt_seconds(p99_limit)}")
    return Verdict(not reasons, tuple(reasons))


def rate_sustained(runs: Sequence[RunFigures], *, p99_limit: float) -> Verdict:
    """A rate is sustained when most of its runs (more than half) were: one noisy run on
    a shared machine neither makes nor breaks it."""
    if not runs:
        return Verdict(False, ("not run",))
    verdicts = [run_verdict(run, p99_limit=p99_limit) for run in runs]
    good = sum(1 for v in verdicts if v.sustained)
    if good * 2 > len(runs):
        return Verdict(True)
    kinds = sorted({_kind(reason) for v in verdicts for reason in v.reasons})
    return Verdict(False, (f"{len(runs) - good} of {len(runs)} runs not sustained", *kinds))


def _kind(reason: str) -> str:
    """A run's reason without its numbers (each run's own figures are in the JSON)."""
    for marker, kind in (
        ("sent ", "send rate not met"),
        ("not accepted", "requests refused or failed"),
        ("never reached", "messages not in the read model in time"),
        ("p99 ", "p99 over the limit"),
    ):
        if marker in reason:
            return kind
    return reason


# Below this share of its target, a rate is clearly above capacity: higher rates would only
# measure the same ceiling for longer.
SATURATED_SHARE = 0.5


def saturated(runs: Sequence[RunFigures], *, target_rate: float) -> bool:
    """Most runs drained less than half the target rate."""
    if not runs:
        return False
    low = sum(1 for run in runs if run.drained_rate < SATURATED_SHARE * target_rate)
    return low * 2 > len(runs)


def highest_sustained(verdicts: dict[float, Verdict]) -> float | None:
    """The highest target rate that was sustained (None if none was)."""
    rates = [rate for rate, verdict in verdicts.items() if verdict.sustained]
    return max(rates) if rates else None


@dataclass(frozen=True)
class Spread:
    """The median of several runs' values and their range."""

    median: float
    low: float
    high: float
    values: tuple[float, ...] = field(default=())

    @classmethod
    def of(cls, values: Sequence[float]) -> Spread:
        if not values:
            return cls(math.nan, math.nan, math.nan, ())
        # statistics.median interpolates two middle values; with inf among them the
        # result is inf, which is what an undrained run should give.
        return cls(statistics.median(values), min(values), max(values), tuple(values))


def within_factor(measured: float, baseline: float, factor: float) -> bool:
    """``measured`` is at most ``factor`` times ``baseline`` (a lost message never is)."""
    if not math.isfinite(measured):
        return False
    if not math.isfinite(baseline):
        return True
    return measured <= factor * baseline


@dataclass(frozen=True)
class MemoryTrend:
    start_mb: float
    end_mb: float
    peak_mb: float
    growth: float  # (end - start) / start over the steady part
    slope_mb_per_min: float
    flat: bool


# The first part of a run is the process filling caches, pools and buffers; a leak shows
# as growth after it.
WARM_UP_SHARE = 0.2
FLAT_GROWTH = 0.10


def memory_trend(samples: Sequence[tuple[float, float]]) -> MemoryTrend:
    """Whether RSS samples ``(seconds, MB)`` are flat after the warm-up.

    Compares the median of the first and last quarters of the steady part (medians, so a
    garbage-collection spike does not decide), and fits a least-squares slope for the
    record. Flat means less than 10 % growth between the two quarters.
    """
    if len(samples) < 8:
        raise ValueError("too few samples to tell a trend (need 8)")
    ordered = sorted(samples)
    steady = ordered[int(len(ordered) * WARM_UP_SHARE) :]
    quarter = max(len(steady) // 4, 1)
    start = statistics.median(mb for _, mb in steady[:quarter])
    end = statistics.median(mb for _, mb in steady[-quarter:])
    growth = (end - start) / start if start > 0 else 0.0
    return MemoryTrend(
        start_mb=start,
        end_mb=end,
        peak_mb=max(mb for _, mb in ordered),
        growth=growth,
        slope_mb_per_min=_slope(steady) * 60,
        flat=growth < FLAT_GROWTH,
    )


def _slope(points: Sequence[tuple[float, float]]) -> float:
    n = len(points)
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    var = sum((x - mean_x) ** 2 for x, _ in points)
    if var == 0:
        return 0.0
    return sum((x - mean_x) * (y - mean_y) for x, y in points) / var


def fmt_seconds(value: float) -> str:
    """A latency for the table: ms below 10 s, s above; '∞' for never arrived."""
    if math.isnan(value):
        return "-"
    if not math.isfinite(value):
        return "∞"
    if value < 10:
        return f"{value * 1000:.0f} ms"
    return f"{value:.1f} s"
