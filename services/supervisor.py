"""``switchboard run all``: every process as its own OS process, restarted when it dies.

Each child is ``switchboard run <name>`` with its output in ``<log dir>/<name>.log``. The
consumers are crash-safe by design (positions and effects commit together; the relay and
the timer resume from PostgreSQL), so a child that dies is started again after a back-off
that doubles while it keeps dying. Only a child that keeps failing — ``max_failures``
crashes within ``window_seconds`` — stops the whole system, with a message saying which
and where its log is: restarting it forever would hide a real fault.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from services.registry import names

# One of each, in the registry's order (``make run`` is one machine: replicas are for
# deployments).
PROCESSES = names()
STOP_GRACE_SECONDS = 15.0
TICK_SECONDS = 0.2


@dataclass(frozen=True)
class RestartPolicy:
    """When to start a dead child again, and when to give up on it."""

    first_delay_seconds: float = 1.0
    max_delay_seconds: float = 30.0
    max_failures: int = 5
    window_seconds: float = 300.0


@dataclass(frozen=True)
class Restart:
    delay_seconds: float


@dataclass(frozen=True)
class GiveUp:
    reason: str


def after_crash(policy: RestartPolicy, crashes: tuple[float, ...], now: float) -> Restart | GiveUp:
    """What to do after a child's latest crash (pure; ``crashes`` are monotonic times).

    Only the crashes inside the window count, so a process that crashed twice last week
    and once now starts again at once; the delay doubles with each recent crash.
    """
    recent = [moment for moment in crashes if now - moment <= policy.window_seconds]
    if len(recent) >= policy.max_failures:
        return GiveUp(
            f"{len(recent)} crashes within {policy.window_seconds:.0f}s"
            f" (the limit is {policy.max_failures})"
        )
    delay = policy.first_delay_seconds * 2 ** max(len(recent) - 1, 0)
    return Restart(min(delay, policy.max_delay_seconds))


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes] | None = None
    crashes: deque[float] = field(default_factory=deque)
    restart_at: float | None = None


def run_all(
    log_dir: Path,
    processes: tuple[str, ...] = PROCESSES,
    policy: RestartPolicy | None = None,
) -> int:
    policy = policy or RestartPolicy()
    log_dir.mkdir(parents=True, exist_ok=True)
    children = {name: Child(name) for name in processes}
    stopping = False

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    for child in children.values():
        _start(child, log_dir)
    exit_code = 0
    while not stopping:
        now = time.monotonic()
        for child in children.values():
            if child.process is not None and (code := child.process.poll()) is not None:
                child.process = None
                child.crashes.append(now)
                while len(child.crashes) > policy.max_failures:
                    child.crashes.popleft()
                how = f"signal {-code}" if code < 0 else f"code {code}"
                match after_crash(policy, tuple(child.crashes), now):
                    case GiveUp(reason=reason):
                        _say(f"{child.name} exited with {how}: {reason}; stopping everything")
                        _say(f"see {log_dir / (child.name + '.log')}")
                        exit_code = code if code > 0 else 1
                        stopping = True
                        break
                    case Restart(delay_seconds=delay):
                        _say(f"{child.name} exited with {how}; starting it again in {delay:.0f}s")
                        child.restart_at = now + delay
            if child.process is None and child.restart_at is not None and now >= child.restart_at:
                child.restart_at = None
                _start(child, log_dir)
        time.sleep(TICK_SECONDS)
    print("stopping ...", flush=True)
    _stop([child.process for child in children.values() if child.process is not None])
    print("stopped", flush=True)
    return exit_code


def _start(child: Child, log_dir: Path) -> None:
    log_file = (log_dir / f"{child.name}.log").open("ab")
    child.process = subprocess.Popen(
        [sys.executable, "-m", "services.cli", "run", child.name],
        stdout=log_file,
        stderr=subprocess.STDOUT,
        env=child_env(os.environ),
    )
    log_file.close()  # the child holds its own descriptor
    print(
        f"  {child.name:<10} pid {child.process.pid:<7} log {log_dir / (child.name + '.log')}",
        flush=True,
    )


def child_env(env: Mapping[str, str]) -> dict[str, str]:
    """A child's environment: JSON logs (its output goes to a file), and its own metrics
    port from the registry — one SWITCHBOARD_METRICS_PORT for every child would have them
    fight over it, so only 0 (every endpoint off) is passed on."""
    child = {**env, "SWITCHBOARD_LOG_FORMAT": env.get("SWITCHBOARD_LOG_FORMAT", "json")}
    if child.get("SWITCHBOARD_METRICS_PORT", "").strip() not in ("", "0"):
        del child["SWITCHBOARD_METRICS_PORT"]
    return child


def _stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    for process in processes:
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            _say(f"pid {process.pid} did not stop in {STOP_GRACE_SECONDS:.0f}s; killing it")
            process.kill()
            process.wait()


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
