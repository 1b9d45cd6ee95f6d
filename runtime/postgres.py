"""PostgreSQL plumbing shared by the services: one datastore per service schema, locks."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import anyio.to_thread
import psycopg
import structlog
from eventsourcing.postgres import PostgresDatastore, PostgresRecorder
from psycopg import sql

from runtime.config import Connections

log = structlog.get_logger(__name__)


def open_datastore(settings: Connections, schema: str, *, pool_size: int = 4) -> PostgresDatastore:
    """A connection pool confined to ``schema``, which is created if missing.

    The eventsourcing library qualifies every statement with the schema, so one database
    can hold every service's tables without any service reading another's.
    """
    database = settings.database()
    with schema_lock(settings, schema) as connection:
        connection.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
    datastore = PostgresDatastore(
        dbname=database.dbname,
        host=database.host,
        port=database.port,
        user=database.user,
        password=database.password,
        pool_size=pool_size,
        max_overflow=2,
        schema=schema,
        connect_timeout=10,
        # A connection stuck in a transaction (a bug, a killed thread) must not hold the
        # event table's lock forever.
        idle_in_transaction_session_timeout=30,
        lock_timeout=10,
    )
    # Open (and fill) the pool once, here, so a database that cannot be reached fails the
    # start-up within seconds. The library would otherwise wait for a full pool on every
    # checkout when given an open timeout, and two threads waiting at once trip psycopg_pool.
    datastore.pool.open(wait=True, timeout=10)
    return datastore


R = TypeVar("R", bound=PostgresRecorder)


def open_recorder(
    settings: Connections, service: str, build: Callable[[PostgresDatastore], R]
) -> R:
    """The service's recorder on a pool confined to its schema, with its tables created.

    Blocking: call it through a thread from async code. Close it with
    ``recorder.datastore.close()``.
    """
    recorder = build(open_datastore(settings, settings.schema(service)))
    create_tables(settings, recorder)
    return recorder


def create_tables(settings: Connections, recorder: PostgresRecorder) -> None:
    """Create a recorder's tables, one process at a time per schema.

    Processes start together (``switchboard run all``), and Postgres's ``IF NOT EXISTS``
    does not make concurrent creation of one table or type safe.
    """
    with schema_lock(settings, recorder.datastore.schema):
        recorder.create_table()


@contextmanager
def schema_lock(
    settings: Connections, schema: str
) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    """A session advisory lock naming the schema, held on a connection of its own."""
    key = f"switchboard-schema:{schema}"
    with psycopg.connect(
        settings.database().conninfo(), autocommit=True, connect_timeout=10
    ) as connection:
        connection.execute("SELECT pg_advisory_lock(hashtextextended(%s, 0))", (key,))
        try:
            yield connection
        finally:
            connection.execute("SELECT pg_advisory_unlock(hashtextextended(%s, 0))", (key,))


class advisory_lock:  # noqa: N801 - used as an async context manager, reads as a phrase
    """Hold a session-level advisory lock on a dedicated connection; wait until granted.

    One process at a time does the work the key names (a store's relay, the expiry timer);
    the others wait here as hot standbys. The lock lives as long as the connection, so a
    process killed with SIGKILL releases it as soon as Postgres sees the socket close.
    """

    def __init__(self, conninfo: str, key: str, *, holder: str) -> None:
        self.conninfo = conninfo
        self.key = key
        self.holder = holder
        self.connection: psycopg.Connection[tuple[object, ...]] | None = None

    async def __aenter__(self) -> advisory_lock:
        connection = await anyio.to_thread.run_sync(
            lambda: psycopg.Connection.connect(self.conninfo, autocommit=True, connect_timeout=10)
        )
        self.connection = connection
        waiting_logged = False
        try:
            while not await anyio.to_thread.run_sync(self._try_lock):
                if not waiting_logged:
                    log.info(f"another {self.holder} holds the lock; standing by", key=self.key)
                    waiting_logged = True
                await asyncio.sleep(1.0)
        except BaseException:
            # __aexit__ is not called when __aenter__ fails: close the connection here.
            await anyio.to_thread.run_sync(connection.close)
            raise
        return self

    def _try_lock(self) -> bool:
        assert self.connection is not None
        row = self.connection.execute(
            "SELECT pg_try_advisory_lock(hashtextextended(%s, 0))", (self.key,)
        ).fetchone()
        return bool(row and row[0])

    async def held(self) -> bool:
        """Whether the lock is still ours: it lives as long as its connection, which a
        database restart ends."""
        connection = self.connection
        if connection is None or connection.closed:
            return False

        def ping() -> bool:
            try:
                connection.execute("SELECT 1")
            except psycopg.Error:
                return False
            return True

        return await anyio.to_thread.run_sync(ping)

    async def __aexit__(self, *exc: object) -> None:
        if self.connection is not None:
            await anyio.to_thread.run_sync(self.connection.close)
