"""The expiry timer: one task per process, asleep until the earliest pending deadline.

It never scans every open conversation: each turn asks the indexed ``deadlines`` view for
the deadlines due now (earliest first, a batch at a time) and for the next one, then sleeps
until that one, or until a handler records an earlier deadline and wakes it. Only the
replica holding the advisory lock fires; the lock saves work, while the optimistic
concurrency of each conversation's stream is what guarantees a deadline fires once even if
two timers ever ran together. This is the one place switchboard reads the wall clock.

The database being away stops the timer until it is back (nothing due is lost: a deadline
stays in the view until its firing commits). A deadline that fails to fire for any other
reason (its stream cannot be read, a bug) is tried again a few times, then given up with a
dead letter, and the timer goes on with the others.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime
from typing import Protocol
from uuid import UUID

import anyio.to_thread
import structlog

from runtime.outages import outage_of
from runtime.postgres import advisory_lock
from services.expiry.handlers import DeadlineFirer
from services.expiry.recorder import ExpiryRecorder

log = structlog.get_logger(__name__)
BATCH = 100
# Sleep at most this long between looks, so a wall clock stepped forward (NTP, a VM that
# slept) is noticed within that time; an indexed LIMIT 1 query that often costs nothing.
MAX_SLEEP_SECONDS = 30.0
MAX_BACKOFF_SECONDS = 5.0
FIRE_ATTEMPTS = 3
FAILED_FIRE_PAUSE_SECONDS = 0.5


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    """The wall clock, in UTC."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class ExpiryTimer:
    def __init__(
        self,
        recorder: ExpiryRecorder,
        firer: DeadlineFirer,
        clock: Clock,
        *,
        batch: int = BATCH,
        max_sleep_seconds: float = MAX_SLEEP_SECONDS,
    ) -> None:
        self.recorder = recorder
        self.firer = firer
        self.clock = clock
        self.batch = batch
        self.max_sleep_seconds = max_sleep_seconds
        self.fired = 0
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sleeping_until: datetime | None = None
        self._failures: dict[UUID, int] = {}  # failed firings of a due deadline, in a row

    def deadline_set(self, deadline: datetime) -> None:
        """A handler recorded ``deadline`` (called from a worker thread): wake if it is sooner."""
        loop = self._loop
        target = self._sleeping_until
        if loop is not None and (target is None or deadline < target):
            loop.call_soon_threadsafe(self._wake.set)

    async def run(self, conninfo: str, lock_key: str) -> None:
        """Fire deadlines forever (until cancelled) while holding the timer lock."""
        self._loop = asyncio.get_running_loop()
        delay = 0.2
        while True:
            try:
                async with advisory_lock(conninfo, lock_key, holder="expiry timer"):
                    log.info("expiry timer active", key=lock_key)
                    delay = 0.2
                    await self._fire_forever()
            except Exception as error:
                # Postgres away (the lock's connection too): nothing fired is lost, a due
                # deadline stays in the view until its firing commits.
                log.error("expiry timer failed; retrying", error=repr(error), delay=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, MAX_BACKOFF_SECONDS)

    async def _fire_forever(self) -> None:
        while True:
            # Cleared before looking, so a deadline recorded after the look still wakes us.
            self._wake.clear()
            self._sleeping_until = None
            fired, full, failed = await anyio.to_thread.run_sync(self._fire_due)
            self.fired += fired
            if failed:
                # The ones that failed are still due: try them again shortly, not at once.
                await asyncio.sleep(FAILED_FIRE_PAUSE_SECONDS)
                continue
            if full:
                continue  # more are due right now
            next_due = await anyio.to_thread.run_sync(self.recorder.next_due)
            self._sleeping_until = next_due
            timeout = self.max_sleep_seconds
            if next_due is not None:
                timeout = min(timeout, max(0.0, (next_due - self.clock.now()).total_seconds()))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)

    def _fire_due(self) -> tuple[int, bool, int]:
        """Fire one batch of due deadlines: how many fired, whether the batch was full, and
        how many failed (and were not given up yet)."""
        now = self.clock.now()
        due = self.recorder.due(now, self.batch)
        fired = failed = 0
        for conversation, due_at in due:
            try:
                if self.firer.fire(conversation, now):
                    fired += 1
                    log.info("conversation expired", conversation_id=str(conversation))
            except Exception as error:
                if outage_of(error) is not None:
                    raise  # the database is away: stop here and wait for it
                if self._failed(conversation, due_at, error, now):
                    failed += 1
                continue
            self._failures.pop(conversation, None)
        return fired, len(due) == self.batch, failed

    def _failed(
        self, conversation: UUID, due_at: datetime, error: Exception, now: datetime
    ) -> bool:
        """Count a failed firing; give the deadline up after the last attempt. Whether it
        stays due (to be tried again)."""
        attempts = self._failures.get(conversation, 0) + 1
        log.warning(
            "a due deadline failed to fire",
            conversation_id=str(conversation),
            attempt=attempts,
            error=repr(error),
            exc_info=True,
        )
        if attempts < FIRE_ATTEMPTS:
            self._failures[conversation] = attempts
            return True
        reason = f"{type(error).__name__}: {error} (after {attempts} attempts)"
        self.firer.park(conversation, due_at, reason, now)
        self._failures.pop(conversation, None)
        log.error("deadline dead-lettered", conversation_id=str(conversation), reason=reason)
        return False
