"""``switchboard run all``: every process as its own OS process, stopped together.

Each child is ``switchboard run <name>`` with its output in ``<log dir>/<name>.log``. If one
exits on its own, the others are stopped too and the exit code says so: a half-running
system is worse than a stopped one that says why.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

PROCESSES = (
    "directory",
    "inbound",
    "flows",
    "dispatcher",
    "expiry",
    "assignment",
    "projector",
    "relay",
    "gateway",
)
STOP_GRACE_SECONDS = 15.0


def run_all(log_dir: Path, processes: tuple[str, ...] = PROCESSES) -> int:
    log_dir.mkdir(parents=True, exist_ok=True)
    children: dict[str, subprocess.Popen[bytes]] = {}
    stopping = False

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    for name in processes:
        log_file = (log_dir / f"{name}.log").open("ab")
        children[name] = subprocess.Popen(
            [sys.executable, "-m", "services.cli", "run", name],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env={
                **os.environ,
                "SWITCHBOARD_LOG_FORMAT": os.environ.get("SWITCHBOARD_LOG_FORMAT", "json"),
            },
        )
        print(f"  {name:<10} pid {children[name].pid:<7} log {log_dir / (name + '.log')}")
    exit_code = 0
    while not stopping:
        for name, child in children.items():
            code = child.poll()
            if code is not None:
                print(f"{name} exited with code {code}; stopping the others", file=sys.stderr)
                print(f"see {log_dir / (name + '.log')}", file=sys.stderr)
                exit_code = code or 1
                stopping = True
                break
        time.sleep(0.2)
    print("stopping ...")
    for child in children.values():
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    for name, child in children.items():
        try:
            child.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            print(f"{name} did not stop in {STOP_GRACE_SECONDS:.0f}s; killing it", file=sys.stderr)
            child.kill()
            child.wait()
    print("stopped")
    return exit_code
