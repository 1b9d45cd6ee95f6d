"""Wake the live streams when the projector commits a change, instead of waiting for a poll.

The projector writes each change of the feed (``changes``) and, in the same transaction,
``pg_notify``s the feed's channel with the workspace id; PostgreSQL delivers it at commit.
One connection per gateway listens and counts the notifications per workspace; a stream
notes the count before it reads the feed and then waits until the count moves or its poll
interval passes. The poll stays as the fallback: a lost notification (the listening
connection dropped, and is reconnecting) only costs the old latency, never a change.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from uuid import UUID

import psycopg
import structlog
from psycopg.sql import SQL, Identifier

from projections.queries import change_channel

log = structlog.get_logger(__name__)
RECONNECT_SECONDS = (0.5, 1.0, 2.0, 5.0)


class ChangeSignal:
    def __init__(self, conninfo: str, projections_schema: str) -> None:
        self.conninfo = conninfo
        self.channel = change_channel(projections_schema)
        self.counts: Counter[str] = Counter()
        # One event per workspace somebody waits on; set (and forgotten) when it changes.
        # (Not an asyncio.Condition: a time limit around Condition.wait can leave its lock
        # released under the waiter on Python 3.11, and the stream then dies.)
        self.events: dict[str, asyncio.Event] = {}
        self.task: asyncio.Task[None] | None = None
        # Set while LISTEN is in place (notifications before it are not delivered).
        self.listening = asyncio.Event()

    def start(self) -> None:
        self.task = asyncio.create_task(self._listen_forever())

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task

    def mark(self, workspace_id: UUID) -> int:
        """Where the workspace's count is now: note it before reading the feed."""
        return self.counts[str(workspace_id)]

    async def wait(self, workspace_id: UUID, mark: int, at_most: float) -> None:
        """Until the workspace changed since ``mark``, or ``at_most`` seconds."""
        key = str(workspace_id)
        if self.counts[key] != mark:
            return  # changed while the caller read the feed
        event = self.events.setdefault(key, asyncio.Event())
        # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow the stream's own
        # cancellation (a browser leaving) when its time runs out at the same moment.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(at_most):
                await event.wait()

    def _changed(self, workspace: str) -> None:
        self.counts[workspace] += 1
        event = self.events.pop(workspace, None)
        if event is not None:
            event.set()

    async def _listen_forever(self) -> None:
        failures = 0
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self.conninfo, autocommit=True
                ) as connection:
                    await connection.execute(SQL("LISTEN {}").format(Identifier(self.channel)))
                    self.listening.set()
                    failures = 0
                    async for notification in connection.notifies():
                        self._changed(notification.payload)
            except asyncio.CancelledError:
                raise
            except Exception as error:  # the streams keep polling meanwhile
                self.listening.clear()
                delay = RECONNECT_SECONDS[min(failures, len(RECONNECT_SECONDS) - 1)]
                failures += 1
                log.warning("change notifications lost; listening again", error=repr(error))
                await asyncio.sleep(delay)
