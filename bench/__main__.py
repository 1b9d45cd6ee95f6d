"""``python -m bench`` (what ``make bench`` runs): every part, then the table and the JSON."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import sys
import time
import traceback
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import psutil

from bench import micro, profiling
from bench.lags import slowest
from bench.options import Options, parse
from bench.rebuild import rebuild_vs_read
from bench.report import ProfileResult, Report, SoakResult, render, to_json, verdicts
from bench.scenarios import (
    RunResult,
    System,
    backlogs_of,
    handoff_run,
    ongoing_run,
    start_for_handoff,
    start_for_ongoing,
    started,
    sweep,
)
from bench.stats import memory_trend
from bench.systems import GraphStub, Infrastructure, RawPipeline, Switchboard

REBUILD_TIMEOUT_SECONDS = 300.0


def say(line: str) -> None:
    print(line, flush=True)


def main(argv: list[str] | None = None) -> int:
    opts = parse(argv)
    infra = Infrastructure.from_env()
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    run_dir = opts.out / stamp
    run_dir.mkdir(parents=True, exist_ok=True)
    report = Report(
        started_at=stamp,
        machine={
            "cores": os.cpu_count(),
            "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
            "load_before": _load(),
            "load_after": None,
        },
        options={k: str(v) for k, v in dataclasses.asdict(opts).items()},
    )
    say(f"results and logs in {run_dir}")
    try:
        asyncio.run(run(opts, infra, run_dir, report))
    except KeyboardInterrupt:
        report.problems.append("interrupted (Ctrl-C): the figures are partial")
    report.machine["load_after"] = _load()
    table = render(report)
    (run_dir / "results.json").write_bytes(to_json(report))
    (run_dir / "table.txt").write_text(table + "\n")
    latest = opts.out / "latest"
    if latest.is_symlink() or latest.exists():
        latest.unlink()
    latest.symlink_to(run_dir.resolve(), target_is_directory=True)
    say("\n" + table)
    say(f"\n{run_dir / 'results.json'}")
    return 1 if report.problems else 0


def _load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


async def run(opts: Options, infra: Infrastructure, run_dir: Path, report: Report) -> None:
    graph = GraphStub()
    graph.start()
    try:
        if "raw" in opts.parts:
            await part(report, "raw pipeline", lambda: raw_sweep(opts, infra, run_dir, report))
        if "ongoing" in opts.parts:
            await part(
                report,
                "ongoing conversations",
                lambda: ongoing(opts, infra, run_dir, graph, report),
            )
        if "handoff" in opts.parts:
            await part(
                report, "new conversations", lambda: handoffs(opts, infra, run_dir, graph, report)
            )
        if "micro" in opts.parts:
            await part(report, "micro-benchmarks", lambda: micros(opts, infra, run_dir, report))
        if opts.soak:
            await part(report, "soak", lambda: soak(opts, infra, run_dir, graph, report))
        if opts.profile:
            await part(report, "profile", lambda: profile(opts, infra, run_dir, graph, report))
    finally:
        graph.stop()


async def part(report: Report, name: str, work: Callable[[], Awaitable[None]]) -> None:
    """Run one part; a failure is reported (and the rest still runs), never swallowed."""
    say(f"== {name}")
    started = time.monotonic()
    try:
        await work()
    except Exception as error:
        traceback.print_exc()
        report.problems.append(f"{name} failed: {type(error).__name__}: {error}"[:3000])
    say(f"   ({time.monotonic() - started:.0f} s)")


async def finish(system: System, opts: Options) -> None:
    await system.stop()
    if not opts.keep:
        await system.cleanup()


async def raw_sweep(opts: Options, infra: Infrastructure, run_dir: Path, report: Report) -> None:
    async def new_system() -> System:
        return await started(
            RawPipeline(infra, run_dir), opts, lambda s: start_for_ongoing(s, opts, run_dir)
        )

    _, system = await sweep(
        name="raw",
        scenario="ongoing",
        rates=opts.rates,
        opts=opts,
        p99_limit=opts.p99_limit,
        new_system=new_system,
        run_one=lambda s, r, i: ongoing_run(s, r, i, opts, run_dir),
        say=say,
        into=report.sweeps,
    )
    await finish(system, opts)


async def ongoing(
    opts: Options, infra: Infrastructure, run_dir: Path, graph: GraphStub, report: Report
) -> None:
    async def new_system() -> System:
        return await started(
            Switchboard(infra, run_dir, graph.base_url),
            opts,
            lambda s: start_for_ongoing(s, opts, run_dir),
        )

    _, system = await sweep(
        name="switchboard",
        scenario="ongoing",
        rates=opts.rates,
        opts=opts,
        p99_limit=opts.p99_limit,
        new_system=new_system,
        run_one=lambda s, r, i: ongoing_run(s, r, i, opts, run_dir),
        say=say,
        into=report.sweeps,
    )
    try:
        if "rebuild" in opts.parts and isinstance(system, Switchboard):
            say("== projection rebuild (on the system the sweep filled)")
            report.rebuild = await rebuild_vs_read(system, opts.runs, REBUILD_TIMEOUT_SECONDS)
    except Exception as error:
        traceback.print_exc()
        report.problems.append(f"projection rebuild failed: {type(error).__name__}: {error}")
    finally:
        await finish(system, opts)


async def handoffs(
    opts: Options, infra: Infrastructure, run_dir: Path, graph: GraphStub, report: Report
) -> None:
    async def new_system() -> System:
        return await started(Switchboard(infra, run_dir, graph.base_url), opts, handoff_start)

    async def handoff_start(system: System) -> None:
        assert isinstance(system, Switchboard)
        await start_for_handoff(system)

    # Every run gets a group, agents and contacts of its own: number them across rates.
    counter = iter(range(10_000))

    async def run_one(system: System, rate: float, index: int) -> RunResult:
        assert isinstance(system, Switchboard)
        return await handoff_run(system, rate, next(counter), opts, run_dir)

    _, system = await sweep(
        name="switchboard",
        scenario="handoff",
        rates=opts.handoff_rates,
        opts=opts,
        p99_limit=opts.handoff_p99_limit,
        new_system=new_system,
        run_one=run_one,
        say=say,
        into=report.sweeps,
    )
    await finish(system, opts)


async def micros(opts: Options, infra: Infrastructure, run_dir: Path, report: Report) -> None:
    say("   relay vs producer")
    report.micro.append(
        await micro.relay_vs_producer(infra, run_dir / "micro", opts.micro_batch_events, opts.runs)
    )
    say("   event store append vs psycopg")
    report.micro.append(
        await asyncio.to_thread(
            micro.append_vs_psycopg, infra, opts.micro_events, opts.micro_batch_events, opts.runs
        )
    )
    say("   FastStream hop vs aiokafka hop")
    # One record at a time through FastStream is slow (an ack per record): the smaller count.
    report.micro.append(await micro.hop_vs_aiokafka(infra, opts.micro_events, opts.runs))


async def soak(
    opts: Options, infra: Infrastructure, run_dir: Path, graph: GraphStub, report: Report
) -> None:
    system = Switchboard(infra, run_dir, graph.base_url)
    try:
        await start_for_ongoing(system, opts, run_dir)
        run = await ongoing_run(
            system, opts.soak_rate, 0, opts, run_dir, duration=opts.soak_minutes * 60
        )
        trends = {
            name: memory_trend(series)
            for name, series in run.rss_series.items()
            if len(series) >= 8
        }
        report.soak = SoakResult(opts.soak_rate, opts.soak_minutes, run, trends)
    finally:
        await finish(system, opts)


async def profile(
    opts: Options, infra: Infrastructure, run_dir: Path, graph: GraphStub, report: Report
) -> None:
    rate = opts.profile_rate or saturating_rate(report, opts)
    system = Switchboard(infra, run_dir, graph.base_url)
    chosen: dict[str, str] = {}
    profiles: list[profiling.Profile] = []
    build_up = 3.0

    async def record(target: System) -> None:
        await asyncio.sleep(build_up)  # let the queue form in front of the slowest stage
        processes = target.processes()
        if opts.profile_process:
            name, because = opts.profile_process, "--profile-process"
        else:
            stage = slowest(await backlogs_of(target))
            if stage is not None and stage.process in processes:
                name = stage.process
                because = f"biggest backlog: {stage.stage}, {stage.waiting} waiting"
            else:
                name = busiest(processes)
                because = "no backlog anywhere; the busiest process"
        if name not in processes:
            raise RuntimeError(f"no process {name!r} (there are {sorted(processes)})")
        chosen.update(name=name, because=because)
        say(f"   profiling {name} ({because})")
        pid = processes[name].pid
        half = opts.profile_seconds / 2
        profiles.append(await profiling.record(name, pid, half, run_dir, idle=False))
        profiles.append(await profiling.record(name, pid, half, run_dir, idle=True))

    try:
        await start_for_ongoing(system, opts, run_dir)
        run = await ongoing_run(
            system,
            rate,
            0,
            opts,
            run_dir,
            duration=build_up + opts.profile_seconds + 2,
            while_sending=record,
        )
        report.profile = ProfileResult(
            rate, chosen.get("name", "?"), chosen.get("because", "?"), run, profiles
        )
    finally:
        await finish(system, opts)


def saturating_rate(report: Report, opts: Options) -> float:
    """The lowest rate the ongoing sweep did not sustain (else the highest asked for)."""
    ongoing = report.sweep("switchboard", "ongoing")
    if ongoing is not None:
        unsustained = [rate for rate, v in verdicts(ongoing).items() if not v.sustained]
        if unsustained:
            return min(unsustained)
    return max(opts.rates)


def busiest(processes: dict[str, psutil.Process]) -> str:
    for process in processes.values():
        process.cpu_percent(None)
    time.sleep(1.0)
    usage = {}
    for name, process in processes.items():
        try:
            usage[name] = process.cpu_percent(None)
        except psutil.Error:
            continue
    return max(usage, key=lambda n: usage[n])


if __name__ == "__main__":
    sys.exit(main())
