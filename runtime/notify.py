"""PostgreSQL's LISTEN/NOTIFY as wake-ups: one listening connection per process and channel.

Writers notify when a transaction commits (a trigger on a store's ``events`` table, on the
read models' ``changes`` feed); whoever waits for that payload wakes at once instead of
polling. A wake-up carries no data: the woken reader reads what is new from the tables,
so a notification lost while the connection was down costs nothing but time. After a
reconnect every waiter is woken once, to catch up with what happened meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib

import psycopg
import structlog
from psycopg import sql

log = structlog.get_logger(__name__)
MAX_BACKOFF_SECONDS = 5.0


class Notifications:
    """Listens on ``channel`` and sets the events of whoever waits for a payload."""

    def __init__(self, conninfo: str, channel: str) -> None:
        self.conninfo = conninfo
        self.channel = channel
        self._waiters: dict[str, set[asyncio.Event]] = {}
        self.connected = asyncio.Event()

    def waiter(self, payload: str) -> asyncio.Event:
        """An event set whenever ``payload`` is notified (and after a reconnect)."""
        event = asyncio.Event()
        self._waiters.setdefault(payload, set()).add(event)
        return event

    def forget(self, payload: str, event: asyncio.Event) -> None:
        waiters = self._waiters.get(payload)
        if waiters is not None:
            waiters.discard(event)
            if not waiters:
                del self._waiters[payload]

    async def run(self) -> None:
        """Listen until cancelled, reconnecting after a lost connection."""
        delay = 0.2
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self.conninfo, autocommit=True, connect_timeout=10
                ) as connection:
                    await connection.execute(
                        sql.SQL("LISTEN {}").format(sql.Identifier(self.channel))
                    )
                    self.connected.set()
                    delay = 0.2
                    self._wake_all()  # whatever committed while nobody listened
                    async for notification in connection.notifies():
                        for event in self._waiters.get(notification.payload, ()):
                            event.set()
            except psycopg.Error as error:
                self.connected.clear()
                log.error(
                    "notifications lost; reconnecting", channel=self.channel, error=repr(error)
                )
                self._wake_all()
                await asyncio.sleep(delay)
                delay = min(delay * 2, MAX_BACKOFF_SECONDS)

    def _wake_all(self) -> None:
        for waiters in self._waiters.values():
            for event in waiters:
                event.set()


async def wait_for(event: asyncio.Event, seconds: float) -> bool:
    """Whether ``event`` was set within ``seconds`` (it is cleared either way)."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), seconds)
    woken = event.is_set()
    event.clear()
    return woken
