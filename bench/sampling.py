"""Resident memory and CPU time of a system's processes, sampled from a thread (psutil)."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import psutil

MB = 1024 * 1024


@dataclass(frozen=True)
class Sample:
    at: float  # time.monotonic()
    process: str
    rss_mb: float
    cpu_seconds: float  # user + system since the process started


@dataclass
class Sampler:
    """Samples ``processes()`` every ``interval`` seconds until stopped."""

    processes: Callable[[], dict[str, psutil.Process]]
    interval: float = 0.5
    samples: list[Sample] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> Sampler:
        self._thread = threading.Thread(target=self._loop, name="bench-sampler", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.sample()  # one last look, so a short run has a closing figure

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def sample(self) -> None:
        now = time.monotonic()
        for name, process in self.processes().items():
            with contextlib.suppress(psutil.Error):
                with process.oneshot():
                    rss = process.memory_info().rss / MB
                    times = process.cpu_times()
                self.samples.append(Sample(now, name, rss, times.user + times.system))

    def peak_rss(self) -> dict[str, float]:
        peaks: dict[str, float] = {}
        for s in self.samples:
            peaks[s.process] = max(peaks.get(s.process, 0.0), s.rss_mb)
        return peaks

    def cpu_share(self) -> dict[str, float]:
        """Share of one core each process used over the sampled span (1.0 = a full core).

        A process that restarted mid-run (``run all`` restarts crashed children) only
        counts from its restart, since its CPU counter starts again from zero.
        """
        first: dict[str, Sample] = {}
        last: dict[str, Sample] = {}
        for s in self.samples:
            if s.process not in first or s.cpu_seconds < last[s.process].cpu_seconds:
                first[s.process] = s
            last[s.process] = s
        shares: dict[str, float] = {}
        for name, start in first.items():
            end = last[name]
            span = end.at - start.at
            if span > 0:
                shares[name] = (end.cpu_seconds - start.cpu_seconds) / span
        return shares

    def series(self, process: str) -> list[tuple[float, float]]:
        return [(s.at, s.rss_mb) for s in self.samples if s.process == process]
