"""PostgreSQL plumbing shared by the services: one datastore per service schema."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from eventsourcing.postgres import PostgresDatastore, PostgresRecorder
from psycopg import sql

from services.settings import Settings


def open_datastore(settings: Settings, schema: str, *, pool_size: int = 4) -> PostgresDatastore:
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


def create_tables(settings: Settings, recorder: PostgresRecorder) -> None:
    """Create a recorder's tables, one process at a time per schema.

    Processes start together (``switchboard run all``), and Postgres's ``IF NOT EXISTS``
    does not make concurrent creation of one table or type safe.
    """
    with schema_lock(settings, recorder.datastore.schema):
        recorder.create_table()


@contextmanager
def schema_lock(
    settings: Settings, schema: str
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
