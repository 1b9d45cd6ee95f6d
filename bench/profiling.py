"""py-spy on a running process, and a short reading of what it recorded.

``py-spy record`` samples a live process by its pid (no restart, no code change): once
on-CPU only (where the process computes), once with ``--idle`` (where its threads wait:
database round trips, thread hand-offs, Kafka acks). Each is saved as collapsed stacks
under ``.local/bench/`` (``frame;frame;frame count`` lines: the input of ``flamegraph.pl``,
and a format speedscope opens as it is).
"""

from __future__ import annotations

import asyncio
import itertools
import re
import shutil
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Hotspot:
    function: str
    self_share: float  # share of samples where it is the innermost frame
    total_share: float  # share of samples where it is on the stack


@dataclass(frozen=True)
class Profile:
    process: str
    pid: int
    mode: str  # "cpu" or "wall" (idle included)
    samples: int
    collapsed: Path
    self_top: list[Hotspot]
    total_top: list[Hotspot]
    own_top: list[Hotspot]  # switchboard's own functions, by share of samples on the stack


def py_spy() -> str:
    found = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(found).exists():
        raise RuntimeError("py-spy is not installed (make install brings it from PyPI)")
    return found


async def record(process: str, pid: int, seconds: float, out_dir: Path, *, idle: bool) -> Profile:
    mode = "wall" if idle else "cpu"
    collapsed = out_dir / f"profile-{process}-{mode}.txt"
    arguments = [
        py_spy(),
        "record",
        "--pid",
        str(pid),
        "--duration",
        str(max(int(seconds), 1)),
        "--rate",
        "100",
        "--format",
        "raw",
        "--output",
        str(collapsed),
        # Sample without pausing the process: a little less exact, far less intrusive.
        "--nonblocking",
    ]
    if idle:
        arguments.append("--idle")
    child = await asyncio.create_subprocess_exec(
        *arguments, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await child.communicate()
    if child.returncode != 0 or not collapsed.exists():
        raise RuntimeError(f"py-spy failed: {out.decode(errors='replace')[-1000:]}")
    stacks = read_collapsed(collapsed.read_text())
    # py-spy's idle detection misses some waits (``--nonblocking`` samples without
    # pausing), so idle background threads are left out of both modes.
    stacks = busy_threads(stacks)
    self_top, total_top = hotspots(stacks)
    return Profile(
        process,
        pid,
        mode,
        sum(stacks.values()),
        collapsed,
        self_top,
        total_top,
        own_code(stacks),
    )


LINE_NUMBER = re.compile(r":\d+\)$")
OWN_CODE = ("services/", "projections/", "events/")
ENTRY_POINT = "(services/cli.py)"  # on every stack of the main thread: says nothing


def read_collapsed(text: str) -> Counter[tuple[str, ...]]:
    """``frame;frame;frame count`` lines (outermost first) into stack -> samples.

    A frame is ``function (file.py:line)``; the line is dropped, so a function counts once
    whichever of its lines was running.
    """
    stacks: Counter[tuple[str, ...]] = Counter()
    for line in text.splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            frames = tuple(LINE_NUMBER.sub(")", frame) for frame in stack.split(";"))
            stacks[frames] += int(count)
    return stacks


# Threads that only wait for work to arrive (a pool's housekeeping, an idle worker of a
# thread pool): with ``--idle`` they fill most samples and say nothing about the work.
IDLE_LOOPS = ("ConnectionPool.worker", "Scheduler.run")
WAITS = ("Condition.wait", "Event.wait")


def busy_threads(stacks: Counter[tuple[str, ...]]) -> Counter[tuple[str, ...]]:
    """The stacks without idle background threads: those waiting in a pool's housekeeping
    loop, or an idle worker thread waiting on its queue (the event loop's own wait in
    ``select`` stays: it shows how long the loop had nothing to do)."""
    kept: Counter[tuple[str, ...]] = Counter()
    for stack, count in stacks.items():
        waiting = bool(stack) and stack[-1].startswith(WAITS)
        housekeeping = any(frame.startswith(IDLE_LOOPS) for frame in stack)
        idle_worker = any(
            frame.startswith("WorkerThread.run") and following.startswith("Queue.get")
            for frame, following in itertools.pairwise(stack)
        )
        if waiting and (housekeeping or idle_worker):
            continue
        kept[stack] += count
    return kept


def own_code(stacks: Counter[tuple[str, ...]], top: int = 12) -> list[Hotspot]:
    """switchboard's functions (``services/``, ``projections/``, ``events/``) by the share
    of samples they are on the stack for: where the project's own code spends the time."""
    total = sum(stacks.values())
    if total == 0:
        return []
    anywhere: Counter[str] = Counter()
    own: Counter[str] = Counter()
    for stack, count in stacks.items():
        ours = [
            frame
            for frame in stack
            if any(f"({p}" in frame for p in OWN_CODE) and ENTRY_POINT not in frame
        ]
        for frame in set(ours):
            anywhere[frame] += count
        if stack and stack[-1] in ours:
            own[stack[-1]] += count
    return [
        Hotspot(name, own[name] / total, anywhere[name] / total)
        for name in sorted(anywhere, key=lambda n: -anywhere[n])[:top]
    ]


def hotspots(
    stacks: Counter[tuple[str, ...]], top: int = 12
) -> tuple[list[Hotspot], list[Hotspot]]:
    """The functions with the most samples as the innermost frame, and on the stack."""
    total = sum(stacks.values())
    if total == 0:
        return [], []
    own: Counter[str] = Counter()
    anywhere: Counter[str] = Counter()
    for stack, count in stacks.items():
        if not stack:
            continue
        own[stack[-1]] += count
        for frame in set(stack):
            anywhere[frame] += count
    shares = {name: (own[name] / total, anywhere[name] / total) for name in anywhere}
    by_self = sorted(own, key=lambda n: -own[n])[:top]
    by_total = sorted(anywhere, key=lambda n: -anywhere[n])[:top]
    return (
        [Hotspot(n, *shares[n]) for n in by_self],
        [Hotspot(n, *shares[n]) for n in by_total],
    )
