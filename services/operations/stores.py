"""Reading every service's event store for what mentions one id (blocking; psycopg).

Each store is the eventsourcing library's ``events`` table in the service's schema, the
envelope stored as JSON bytes. The scan looks for the id's bytes inside each stored event
(``position(... in state)``): no column holds a conversation id, and casting the bytes to
``jsonb`` would fail on text PostgreSQL cannot hold (NUL, kept whole in the events). What
it finds is decoded and then judged by ``services.operations.timeline``, which keeps only
the events that are truly about the conversation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from uuid import UUID

import psycopg
from psycopg import sql

from events.codec import CodecError, Registry, decode
from runtime.store import EVENTS_TABLE
from services.operations.timeline import StoredEntry
from services.settings import Settings


@dataclass
class Found:
    """The decoded events that mention the id, and what could not be decoded (with why)."""

    entries: list[StoredEntry] = field(default_factory=list)
    undecodable: list[str] = field(default_factory=list)
    missing_stores: list[str] = field(default_factory=list)


def events_mentioning(
    settings: Settings, stores: Sequence[str], mentioned: UUID, registry: Registry
) -> Found:
    """Every stored event, in every store of ``stores``, whose bytes contain ``mentioned``."""
    found = Found()
    needle = str(mentioned).encode()
    with psycopg.connect(settings.database().conninfo(), autocommit=True) as connection:
        for store in stores:
            table = sql.Identifier(settings.schema(store), EVENTS_TABLE)
            exists = connection.execute(
                "SELECT to_regclass(%s) IS NOT NULL",
                (f'"{settings.schema(store)}"."{EVENTS_TABLE}"',),
            ).fetchone()
            if not exists or not exists[0]:
                found.missing_stores.append(store)
                continue
            rows = connection.execute(
                sql.SQL(
                    "SELECT notification_id, state FROM {} WHERE position(%s in state) > 0"
                    " ORDER BY notification_id"
                ).format(table),
                (needle,),
            ).fetchall()
            for notification_id, state in rows:
                try:
                    envelope = decode(bytes(state), registry)
                except CodecError as error:
                    found.undecodable.append(f"{store} #{notification_id}: {error}")
                    continue
                found.entries.append(StoredEntry(store, int(notification_id), envelope))
    return found
