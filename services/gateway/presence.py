"""Presence: a member whose live streams are all gone for a grace period goes offline.

A reload, or a connection that drops and comes back (to this gateway or another replica),
must not flip an agent offline: only when none of its ``/api/stream`` sessions has been
alive for ``SWITCHBOARD_PRESENCE_GRACE_SECONDS`` is it set ``offline`` (a directory
command, reason "session ended").

Sessions are kept in the gateway's own schema (``gateway.stream_sessions``), so every
replica sees every session: a stream opened on replica B keeps the member present while
replica A's old one is closed. It is edge state about connections, not a domain fact (the
status change is the fact, an event), hence a plain table. A replica that dies cannot say
its streams closed: a session not seen for ``STALE_AFTER`` (three heartbeats) counts as
ended when it was last seen plus that. Each replica sweeps the table on a timer; two
replicas sending the same offline command is harmless (the directory refuses the second:
"already offline").
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID, uuid4

import anyio.to_thread
import structlog
from psycopg.rows import dict_row
from psycopg.sql import SQL, Composed, Identifier
from psycopg_pool import AsyncConnectionPool

from events.directory import SetAgentStatus
from projections.queries import Caller, ReadModels
from runtime.postgres import schema_lock
from services.gateway.dependencies import Publisher, send_command
from services.settings import Settings

log = structlog.get_logger(__name__)

HEARTBEAT = timedelta(seconds=10)
STALE_AFTER = 3 * HEARTBEAT
SESSION_ENDED = "session ended"


@dataclass(frozen=True)
class SessionSeen:
    """One stream session as the table holds it."""

    seen_at: datetime
    closed_at: datetime | None


def ended_at(session: SessionSeen, now: datetime, stale_after: timedelta) -> datetime | None:
    """When the session ended: closed, or presumed dead once not seen for ``stale_after``
    (its gateway died); None while it is alive."""
    if session.closed_at is not None:
        return session.closed_at
    presumed = session.seen_at + stale_after
    return presumed if presumed <= now else None


def present(
    sessions: Iterable[SessionSeen], now: datetime, *, grace: timedelta, stale_after: timedelta
) -> bool:
    """Whether a member with these sessions is still present: one is alive, or one ended
    less than ``grace`` ago (a reload, a dropped connection coming back)."""
    for session in sessions:
        ended = ended_at(session, now, stale_after)
        if ended is None or ended > now - grace:
            return True
    return False


SCHEMA_STATEMENTS = (
    "CREATE SCHEMA IF NOT EXISTS {s}",
    """CREATE TABLE IF NOT EXISTS {s}.stream_sessions (
        session_id uuid PRIMARY KEY,
        workspace_id uuid NOT NULL,
        member_id uuid NOT NULL,
        opened_at timestamptz NOT NULL,
        seen_at timestamptz NOT NULL,
        closed_at timestamptz)""",
    "CREATE INDEX IF NOT EXISTS stream_sessions_by_member ON {s}.stream_sessions (member_id)",
)


class Presence:
    """The stream sessions of every gateway replica, and the sweep that sets members offline."""

    def __init__(
        self,
        pool: AsyncConnectionPool,
        models: ReadModels,
        publisher: Publisher,
        settings: Settings,
    ) -> None:
        self.pool = pool
        self.models = models
        self.publisher = publisher
        self.settings = settings
        self.schema = Identifier(settings.schema("gateway"))
        self.grace = timedelta(seconds=settings.presence_grace_seconds)
        self.pending: set[asyncio.Task[None]] = set()
        self._sweeper: asyncio.Task[None] | None = None

    def _sql(self, statement: str) -> Composed:
        return SQL(statement).format(s=self.schema)

    async def start(self) -> None:
        """Create the table (one process at a time) and start sweeping."""

        def create() -> None:
            with schema_lock(self.settings, self.settings.schema("gateway")) as connection:
                for statement in SCHEMA_STATEMENTS:
                    connection.execute(self._sql(statement))

        await anyio.to_thread.run_sync(create)
        self._sweeper = asyncio.create_task(self._sweep_forever())

    async def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        if self.pending:
            await asyncio.wait(self.pending, timeout=5)

    async def opened(self, who: Caller) -> UUID:
        session = uuid4()
        await self._execute(
            "INSERT INTO {s}.stream_sessions VALUES (%s, %s, %s, now(), now(), NULL)",
            (session, who.workspace_id, who.member_id),
        )
        return session

    async def heartbeat(self, session: UUID) -> None:
        await self._execute(
            "UPDATE {s}.stream_sessions SET seen_at = now() WHERE session_id = %s", (session,)
        )

    def closed(self, session: UUID) -> None:
        """The stream ended. Called while its task is being cancelled: the write runs on a
        task of its own."""
        task = asyncio.create_task(self._close(session))
        self.pending.add(task)
        task.add_done_callback(self.pending.discard)

    async def _close(self, session: UUID) -> None:
        try:
            await self._execute(
                "UPDATE {s}.stream_sessions SET closed_at = now() WHERE session_id = %s",
                (session,),
            )
        except Exception as error:  # it counts as ended once stale; say why here
            log.warning("could not record a stream's end", session=str(session), error=repr(error))

    async def _execute(self, statement: str, params: tuple[object, ...]) -> None:
        async with self.pool.connection() as connection:
            await connection.execute(self._sql(statement), params)

    async def _sweep_forever(self) -> None:
        interval = max(0.1, min(self.grace.total_seconds() / 2, 5.0))
        while True:
            await asyncio.sleep(interval)
            try:
                await self.sweep()
            except Exception as error:  # the next sweep tries again; say why here
                log.warning("presence sweep failed", error=repr(error))

    async def sweep(self) -> list[UUID]:
        """Set offline every member whose sessions all ended more than the grace ago; the
        members it did."""
        async with self.pool.connection() as connection:
            cursor = connection.cursor(row_factory=dict_row)
            await cursor.execute(
                self._sql(
                    "SELECT workspace_id, member_id, seen_at, closed_at, now() AS now"
                    " FROM {s}.stream_sessions"
                )
            )
            rows = await cursor.fetchall()
        if not rows:
            return []
        now: datetime = rows[0]["now"]
        sessions: dict[tuple[UUID, UUID], list[SessionSeen]] = defaultdict(list)
        for row in rows:
            key = (row["workspace_id"], row["member_id"])
            sessions[key].append(SessionSeen(row["seen_at"], row["closed_at"]))
        gone = [
            key
            for key, seen in sessions.items()
            if not present(seen, now, grace=self.grace, stale_after=STALE_AFTER)
        ]
        for workspace_id, member_id in gone:
            await self._offline(workspace_id, member_id, now)
        return [member_id for _, member_id in gone]

    async def _offline(self, workspace_id: UUID, member_id: UUID, now: datetime) -> None:
        member = await self.models.member(workspace_id, member_id)
        if member is not None and member["active"] and member["status"] != "offline":
            who = Caller(member_id=member_id, workspace_id=workspace_id, role="", name="")
            command = SetAgentStatus(
                workspace_id=workspace_id,
                member_id=member_id,
                status="offline",
                reason=SESSION_ENDED,
            )
            await send_command(self.publisher, self.settings, who, command)
        # Forget the ended sessions (a session opened since stays, and keeps it present).
        await self._execute(
            "DELETE FROM {s}.stream_sessions WHERE member_id = %s AND"
            " (closed_at IS NOT NULL OR seen_at < %s)",
            (member_id, now - STALE_AFTER),
        )
