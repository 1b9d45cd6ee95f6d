"""What a bench run does: parts, rates, durations, repetitions, flags (``--help``)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

PARTS = ("raw", "ongoing", "handoff", "rebuild", "micro")


@dataclass(frozen=True)
class Options:
    parts: tuple[str, ...]
    rates: tuple[float, ...]
    handoff_rates: tuple[float, ...]
    duration: float
    runs: int
    drain: float
    contacts: int
    warmup_rate: float
    think: float
    p99_limit: float
    handoff_p99_limit: float
    senders: int
    connections: int
    skip_saturated: bool
    micro_events: int
    micro_batch_events: int
    soak: bool
    soak_minutes: float
    soak_rate: float
    profile: bool
    profile_rate: float | None
    profile_process: str | None
    profile_seconds: float
    out: Path
    keep: bool


def parse(argv: Sequence[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="switchboard's end-to-end and micro benchmarks beside a raw baseline"
        " measured in the same run (see the README's Benchmarks section).",
    )
    parser.add_argument(
        "--only",
        default=",".join(PARTS),
        help=f"comma-separated parts to run, of {', '.join(PARTS)} (default: all;"
        " 'rebuild' needs 'ongoing')",
    )
    parser.add_argument(
        "--rates", default="100,500,1000,2000", help="messages/s for ongoing conversations"
    )
    parser.add_argument(
        "--handoff-rates", default="50,100,200", help="new conversations/s through the flow"
    )
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of load per run")
    parser.add_argument(
        "--long", action="store_true", help="60 s per run instead of --duration (steadier)"
    )
    parser.add_argument("--runs", type=int, default=3, help="runs per rate (median and spread)")
    parser.add_argument(
        "--drain",
        type=float,
        default=15.0,
        help="seconds after the last send to wait for the read model; what has not arrived"
        " by then counts as never arrived",
    )
    parser.add_argument(
        "--contacts", type=int, default=200, help="ongoing conversations the load spreads over"
    )
    parser.add_argument(
        "--warmup-rate", type=float, default=25.0, help="messages/s that open the conversations"
    )
    parser.add_argument(
        "--think", type=float, default=1.0, help="seconds a new customer takes to tap a button"
    )
    parser.add_argument(
        "--p99-ms", type=float, default=250.0, help="p99 that counts as sustained (ongoing)"
    )
    parser.add_argument(
        "--handoff-p99-ms",
        type=float,
        default=1000.0,
        help="p99 that counts as sustained for hand-offs (the issue sets none; see README)",
    )
    parser.add_argument("--senders", type=int, default=1, help="load generator processes")
    parser.add_argument("--connections", type=int, default=64, help="HTTP connections in all")
    parser.add_argument(
        "--no-skip",
        action="store_true",
        help="run every rate even above one the system clearly could not drain",
    )
    parser.add_argument("--micro-events", type=int, default=3000)
    parser.add_argument("--micro-batch-events", type=int, default=20000)
    parser.add_argument(
        "--soak", action="store_true", help="memory over a long run (--soak-minutes at --soak-rate)"
    )
    parser.add_argument("--soak-minutes", type=float, default=10.0)
    parser.add_argument("--soak-rate", type=float, default=500.0)
    parser.add_argument(
        "--profile",
        action="store_true",
        help="profile the slowest stage under py-spy at a saturating rate",
    )
    parser.add_argument(
        "--profile-rate",
        type=float,
        default=None,
        help="rate to profile at (default: the lowest rate the ongoing sweep did not sustain)",
    )
    parser.add_argument(
        "--profile-process",
        default=None,
        help="process to profile (default: the one behind the biggest backlog)",
    )
    parser.add_argument("--profile-seconds", type=float, default=20.0)
    parser.add_argument("--out", default=".local/bench", help="where results go")
    parser.add_argument(
        "--keep", action="store_true", help="keep the run's topics and schemas for a look"
    )
    parser.add_argument(
        "--quick", action="store_true", help="one run per rate, 5 s each (a smoke check)"
    )
    args = parser.parse_args(argv)
    parts = tuple(p.strip() for p in args.only.split(",") if p.strip())
    unknown = [p for p in parts if p not in PARTS]
    if unknown:
        parser.error(f"unknown parts {unknown}; choose from {', '.join(PARTS)}")
    duration = 5.0 if args.quick else 60.0 if args.long else args.duration
    return Options(
        parts=parts,
        rates=_rates(parser, args.rates),
        handoff_rates=_rates(parser, args.handoff_rates),
        duration=duration,
        runs=1 if args.quick else args.runs,
        drain=args.drain,
        contacts=args.contacts,
        warmup_rate=args.warmup_rate,
        think=args.think,
        p99_limit=args.p99_ms / 1000,
        handoff_p99_limit=args.handoff_p99_ms / 1000,
        senders=args.senders,
        connections=args.connections,
        skip_saturated=not args.no_skip,
        micro_events=args.micro_events,
        micro_batch_events=args.micro_batch_events,
        soak=args.soak,
        soak_minutes=args.soak_minutes,
        soak_rate=args.soak_rate,
        profile=args.profile,
        profile_rate=args.profile_rate,
        profile_process=args.profile_process,
        profile_seconds=args.profile_seconds,
        out=Path(args.out),
        keep=args.keep,
    )


def _rates(parser: argparse.ArgumentParser, text: str) -> tuple[float, ...]:
    try:
        rates = tuple(sorted(float(r) for r in text.split(",") if r.strip()))
    except ValueError:
        parser.error(f"rates must be numbers separated by commas, got {text!r}")
    if not rates or any(r <= 0 for r in rates):
        parser.error(f"rates must be positive, got {text!r}")
    return rates
