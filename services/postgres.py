"""PostgreSQL plumbing shared by the services: one datastore per service schema."""

from __future__ import annotations

from eventsourcing.postgres import PostgresDatastore
from psycopg import sql

from services.settings import Settings


def open_datastore(settings: Settings, schema: str, *, pool_size: int = 4) -> PostgresDatastore:
    """A connection pool confined to ``schema``, which is created if missing.

    The eventsourcing library qualifies every statement with the schema, so one database
    can hold every service's tables without any service reading another's.
    """
    database = settings.database()
    datastore = PostgresDatastore(
        dbname=database.dbname,
        host=database.host,
        port=database.port,
        user=database.user,
        password=database.password,
        pool_size=pool_size,
        max_overflow=2,
        schema=schema,
        # A pool that cannot connect should fail a start-up within seconds, not hang.
        pool_open_timeout=10,
        connect_timeout=10,
        # A connection stuck in a transaction (a bug, a killed thread) must not hold the
        # event table's lock forever.
        idle_in_transaction_session_timeout=30,
        lock_timeout=10,
    )
    with datastore.transaction(commit=True) as cursor:
        cursor.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
    return datastore
