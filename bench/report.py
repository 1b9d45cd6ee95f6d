"""The results as JSON (``.local/bench/<run>/results.json``) and as the printed table, with
the issue's goals beside the figures (met / not met)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from bench.micro import Comparison
from bench.profiling import Profile
from bench.rebuild import RebuildResult
from bench.scenarios import RunResult, Sweep
from bench.stats import (
    MemoryTrend,
    Spread,
    Verdict,
    fmt_seconds,
    highest_sustained,
    rate_sustained,
    within_factor,
)

GOAL_SUSTAINED = 1000.0
GOAL_P99_RATE = 500.0
GOAL_P99 = 0.250
GOAL_NEW_CONVERSATIONS = 200.0
GOAL_RAW_FACTOR = 2.0


@dataclass(frozen=True)
class Goal:
    goal: str
    measured: str
    met: bool | None  # None: not measured in this run


@dataclass
class SoakResult:
    rate: float
    minutes: float
    run: RunResult
    trends: dict[str, MemoryTrend]


@dataclass
class ProfileResult:
    rate: float
    process: str
    chosen_because: str
    run: RunResult | None
    profiles: list[Profile]


@dataclass
class Report:
    started_at: str
    machine: dict[str, Any]
    options: dict[str, Any]
    sweeps: list[Sweep] = field(default_factory=list)
    micro: list[Comparison] = field(default_factory=list)
    rebuild: RebuildResult | None = None
    soak: SoakResult | None = None
    profile: ProfileResult | None = None
    problems: list[str] = field(default_factory=list)

    def sweep(self, system: str, scenario: str) -> Sweep | None:
        return next((s for s in self.sweeps if s.system == system and s.scenario == scenario), None)


def verdicts(sweep: Sweep) -> dict[float, Verdict]:
    return {
        rate: rate_sustained([r.figures for r in runs], p99_limit=sweep.p99_limit)
        for rate, runs in sweep.runs.items()
    }


def median_of(runs: Sequence[RunResult], pick: Any) -> Spread:
    return Spread.of([pick(run) for run in runs])


def goals(report: Report) -> list[Goal]:
    ongoing = report.sweep("switchboard", "ongoing")
    raw = report.sweep("raw", "ongoing")
    handoff = report.sweep("switchboard", "handoff")
    found: list[Goal] = []
    if ongoing is None:
        found.append(Goal("≥ 1,000 msg/s sustained (p99 ≤ 250 ms)", "not measured", None))
        found.append(Goal("p99 ≤ 250 ms at 500 msg/s", "not measured", None))
    else:
        best = highest_sustained(verdicts(ongoing))
        found.append(
            Goal(
                "≥ 1,000 msg/s sustained (p99 ≤ 250 ms)",
                f"highest sustained: {best:g}/s" if best else "no rate sustained",
                best is not None and best >= GOAL_SUSTAINED,
            )
        )
        at = ongoing.runs.get(GOAL_P99_RATE)
        if at:
            p99 = median_of(at, lambda r: r.figures.latency.p99).median
            found.append(
                Goal("p99 ≤ 250 ms at 500 msg/s", f"p99 {fmt_seconds(p99)}", p99 <= GOAL_P99)
            )
        elif GOAL_P99_RATE in ongoing.skipped:
            found.append(Goal("p99 ≤ 250 ms at 500 msg/s", ongoing.skipped[GOAL_P99_RATE], False))
        else:
            found.append(Goal("p99 ≤ 250 ms at 500 msg/s", "500/s not in --rates", None))
    if handoff is None:
        found.append(Goal("≥ 200 new conversations/s", "not measured", None))
    else:
        best = highest_sustained(verdicts(handoff))
        found.append(
            Goal(
                f"≥ 200 new conversations/s (p99 ≤ {fmt_seconds(handoff.p99_limit)})",
                f"highest sustained: {best:g}/s" if best else "no rate sustained",
                best is not None and best >= GOAL_NEW_CONVERSATIONS,
            )
        )
    if ongoing is None or raw is None:
        found.append(Goal("p99 within 2x the raw pipeline's", "not measured", None))
    else:
        ratios: list[str] = []
        met = True
        for rate, raw_runs in sorted(raw.runs.items()):
            base = median_of(raw_runs, lambda r: r.figures.latency.p99).median
            ours_runs = ongoing.runs.get(rate)
            if not ours_runs:
                ratios.append(f"{rate:g}/s: switchboard not run")
                met = False
                continue
            ours = median_of(ours_runs, lambda r: r.figures.latency.p99).median
            ratio = ours / base if math.isfinite(ours) and base > 0 else math.inf
            ratios.append(f"{rate:g}/s: {ratio:.1f}x" if math.isfinite(ratio) else f"{rate:g}/s: ∞")
            met = met and within_factor(ours, base, GOAL_RAW_FACTOR)
        found.append(Goal("p99 within 2x the raw pipeline's", ", ".join(ratios), met))
    return found


# --- printing --------------------------------------------------------------------------


def spread_text(spread: Spread, fmt: Callable[[float], str]) -> str:
    if len(spread.values) <= 1:
        return fmt(spread.median)
    return f"{fmt(spread.median)} ({fmt(spread.low)}-{fmt(spread.high)})"


def per_second(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.0f}"


def sweep_table(sweeps: Sequence[Sweep]) -> list[str]:
    lines = [
        f"{'rate':>7}  {'system':<11} {'sent/s':>15} {'drained/s':>15} {'p50':>20}"
        f" {'p99':>22} {'p99.9':>20}  {'p50 1st→last third':<22} sustained",
    ]
    rates = sorted({rate for s in sweeps for rate in (*s.runs, *s.skipped)})
    for rate in rates:
        for s in sweeps:
            label = f"{rate:g}/s"
            if rate in s.skipped:
                lines.append(f"{label:>7}  {s.system:<11} {s.skipped[rate]}")
                continue
            runs = s.runs.get(rate)
            if not runs:
                continue
            verdict = rate_sustained([r.figures for r in runs], p99_limit=s.p99_limit)
            first = median_of(runs, lambda r: r.figures.p50_first_third).median
            last = median_of(runs, lambda r: r.figures.p50_last_third).median
            lines.append(
                f"{label:>7}  {s.system:<11}"
                f" {spread_text(median_of(runs, lambda r: r.figures.send_rate), per_second):>15}"
                f" {spread_text(median_of(runs, lambda r: r.figures.drained_rate), per_second):>15}"
                f" {spread_text(median_of(runs, lambda r: r.figures.latency.p50), fmt_seconds):>20}"
                f" {spread_text(median_of(runs, lambda r: r.figures.latency.p99), fmt_seconds):>22}"
                f" {spread_text(median_of(runs, lambda r: r.figures.latency.p999), fmt_seconds):>20}"  # noqa: E501
                f"  {fmt_seconds(first) + ' → ' + fmt_seconds(last):<22}"
                f" {'yes' if verdict.sustained else 'no: ' + '; '.join(verdict.reasons)}"
            )
    return lines


def memory_table(report: Report) -> list[str]:
    ongoing = report.sweep("switchboard", "ongoing")
    if ongoing is None or not ongoing.runs:
        return []
    best = highest_sustained(verdicts(ongoing))
    rate = best if best is not None else min(ongoing.runs)
    runs = ongoing.runs[rate]
    title = (
        f"Memory and CPU at the highest sustained rate ({rate:g}/s)"
        if best is not None
        else f"Memory and CPU (no rate sustained; at the lowest, {rate:g}/s)"
    )
    names = sorted({name for run in runs for name in run.peak_rss_mb})
    lines = [title, f"  {'process':<14} {'peak RSS':>12} {'CPU (cores)':>12}"]
    for name in names:
        peak = max(run.peak_rss_mb.get(name, 0.0) for run in runs)
        cpu = Spread.of([run.cpu_cores[name] for run in runs if name in run.cpu_cores]).median
        lines.append(f"  {name:<14} {peak:>9.0f} MB {cpu:>12.2f}")
    return lines


def saturation_lines(report: Report) -> list[str]:
    """Where the backlog stood at the end of the send phase, for each unsustained rate."""
    ongoing = report.sweep("switchboard", "ongoing")
    if ongoing is None:
        return []
    lines: list[str] = []
    for rate, runs in sorted(ongoing.runs.items()):
        last = runs[-1]
        waiting = sorted((b for b in last.backlogs if b.waiting), key=lambda b: -b.waiting)[:4]
        if last.verdict.sustained or not waiting:
            continue
        cpu = ", ".join(
            f"{n} {c:.2f}" for n, c in sorted(last.cpu_cores.items(), key=lambda x: -x[1])[:4]
        )
        lines.append(
            f"  {rate:g}/s: waiting "
            + ", ".join(f"{b.stage} {b.waiting}" for b in waiting)
            + f"; busiest (cores): {cpu}"
        )
    return (
        ["Backlog at the end of sending (switchboard, unsustained rates)", *lines] if lines else []
    )


def micro_lines(report: Report) -> list[str]:
    lines: list[str] = []
    comparisons = list(report.micro)
    if report.rebuild is not None:
        comparisons.append(report.rebuild.comparison)
    for c in comparisons:
        lines.append(c.name)
        for figure in c.subject:
            rate = spread_text(figure.per_second, per_second)
            lines.append(f"  switchboard  {figure.label:<62} {rate:>22}/s")
        for figure in c.baseline:
            rate = spread_text(figure.per_second, per_second)
            lines.append(f"  raw          {figure.label:<62} {rate:>22}/s")
        lines.append(f"  ({c.note})")
    return lines


def soak_lines(soak: SoakResult | None) -> list[str]:
    if soak is None:
        return []
    f = soak.run.figures
    lines = [
        f"Memory over {soak.minutes:g} min at {soak.rate:g}/s (sent {f.send_rate:.0f}/s,"
        f" drained {f.drained_rate:.0f}/s, p99 {fmt_seconds(f.latency.p99)})",
        f"  {'process':<14} {'start':>8} {'end':>8} {'peak':>8} {'growth':>8} {'MB/min':>8}"
        "  verdict",
    ]
    for name, t in sorted(soak.trends.items()):
        lines.append(
            f"  {name:<14} {t.start_mb:>6.0f}MB {t.end_mb:>6.0f}MB {t.peak_mb:>6.0f}MB"
            f" {t.growth * 100:>7.1f}% {t.slope_mb_per_min:>8.2f}"
            f"  {'flat' if t.flat else 'GROWING'}"
        )
    return lines


def profile_lines(profile: ProfileResult | None) -> list[str]:
    if profile is None:
        return []
    lines = [
        f"Profile of {profile.process} at {profile.rate:g}/s ({profile.chosen_because})",
    ]
    for p in profile.profiles:
        what = "on-CPU" if p.mode == "cpu" else "wall clock"
        what += ", idle pool and worker threads left out"
        lines.append(f"  {what} ({p.samples} samples; all stacks in {p.collapsed}):")
        for h in p.self_top[:8]:
            lines.append(
                f"    self {h.self_share * 100:5.1f}%  total {h.total_share * 100:5.1f}%"
                f"  {h.function}"
            )
        lines.append("   switchboard's own functions, by time on the stack:")
        for h in p.own_top[:8]:
            lines.append(f"    total {h.total_share * 100:5.1f}%  {h.function}")
    return lines


def render(report: Report) -> str:
    out: list[str] = [
        f"switchboard bench, {report.started_at}; {report.machine['cores']} cores,"
        f" load average {report.machine['load_before']} before,"
        f" {report.machine['load_after']} after"
        " (other work on the machine moves these figures: compare columns of one run)",
        "",
    ]
    ongoing = [s for s in report.sweeps if s.scenario == "ongoing"]
    if ongoing:
        out += [
            "Ongoing conversations: latency from each message's intended send time until its"
            " line is in the conversation history",
            "(median of runs, range in brackets; ∞ = some messages never arrived within the"
            " drain window)",
            *sweep_table(ongoing),
            "",
        ]
    handoffs = [s for s in report.sweeps if s.scenario == "handoff"]
    if handoffs:
        out += [
            "New conversations (greet -> question with buttons -> connect_to_agent): latency from"
            " the customer's button tap until the assignment is in the agent's inbox",
            *sweep_table(handoffs),
            "",
        ]
    for block in (
        memory_table(report),
        saturation_lines(report),
        micro_lines(report),
        soak_lines(report.soak),
        profile_lines(report.profile),
    ):
        if block:
            out += [*block, ""]
    out.append("Goals of issue 10")
    for goal in goals(report):
        state = "not measured" if goal.met is None else "met" if goal.met else "NOT MET"
        out.append(f"  {goal.goal:<48} {goal.measured:<60} {state}")
    if report.problems:
        out += ["", "Problems", *(f"  {p}" for p in report.problems)]
    return "\n".join(out)


def to_json(report: Report) -> bytes:
    def default(value: Any) -> Any:
        if isinstance(value, Path):
            return str(value)
        if isinstance(value, float):
            return None
        raise TypeError(type(value))

    document = dataclasses.asdict(report)
    document["goals"] = [dataclasses.asdict(g) for g in goals(report)]
    document["sustained"] = {
        f"{s.system}/{s.scenario}": {
            f"{rate:g}": dataclasses.asdict(v) for rate, v in verdicts(s).items()
        }
        for s in report.sweeps
    }
    return orjson.dumps(
        _finite(document), default=default, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS
    )


def _finite(value: Any) -> Any:
    """JSON has no infinity: a latency of a message that never arrived is written as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value
