"""When a line becomes visible in a read model, stamped without polling.

The bench installs, in the run's own schema, ``AFTER INSERT`` triggers that
``pg_notify`` a key (a message's wamid, or a contact for an inbox entry). PostgreSQL
delivers a notification when the writing transaction commits, which is exactly when a
reader of the read model can see the row; a listener process of its own stamps each one
with ``time.monotonic()`` as it arrives. Row triggers fire for ``COPY`` and multi-row
``INSERT`` too, so a projector that writes in batches is measured the same way.
"""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Iterable
from multiprocessing.sharedctypes import Synchronized
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any

import orjson
import psycopg
from psycopg import sql

TRIGGER = "bench_arrival"


def history_trigger(
    schema: str, table: str, channel: str, *, customer_only: bool
) -> list[sql.Composed]:
    """Notify each new customer line's wamid on ``channel``."""
    function = sql.Identifier(schema, f"{TRIGGER}_{table}")
    condition = "NEW.wamid IS NOT NULL" + (
        " AND NEW.author_kind = 'customer'" if customer_only else ""
    )
    return [
        sql.SQL(
            "CREATE OR REPLACE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS $$"
            " BEGIN PERFORM pg_notify({channel}, NEW.wamid); RETURN NULL; END $$"
        ).format(function=function, channel=sql.Literal(channel)),
        sql.SQL(
            "CREATE OR REPLACE TRIGGER {name} AFTER INSERT ON {table} FOR EACH ROW"
            " WHEN (" + condition + ") EXECUTE FUNCTION {function}()"
        ).format(
            name=sql.Identifier(TRIGGER),
            table=sql.Identifier(schema, table),
            function=function,
        ),
    ]


def inbox_trigger(schema: str, channel: str) -> list[sql.Composed]:
    """Notify a contact's wa_id when its conversation shows as assigned in an inbox.

    ``GET /api/me/inbox`` lists an assigned conversation once its
    ``conversation_assignments`` row says ``assigned`` to the member *and* its
    ``conversations`` row is open; the two rows come from different topics, so whichever
    lands second notifies.
    """
    s = sql.Identifier(schema)
    on_assignment = sql.Identifier(schema, f"{TRIGGER}_assignment")
    on_conversation = sql.Identifier(schema, f"{TRIGGER}_conversation")
    return [
        sql.SQL(
            "CREATE OR REPLACE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS $$"
            " DECLARE contact text; BEGIN"
            " SELECT c.contact_wa_id INTO contact FROM {s}.conversations c"
            " WHERE c.conversation_id = NEW.conversation_id AND c.status = 'open';"
            " IF contact IS NOT NULL THEN PERFORM pg_notify({channel}, contact); END IF;"
            " RETURN NULL; END $$"
        ).format(function=on_assignment, s=s, channel=sql.Literal(channel)),
        sql.SQL(
            "CREATE OR REPLACE TRIGGER {name}"
            " AFTER INSERT OR UPDATE ON {s}.conversation_assignments"
            " FOR EACH ROW WHEN (NEW.state = 'assigned' AND NEW.assignee_id IS NOT NULL)"
            " EXECUTE FUNCTION {function}()"
        ).format(name=sql.Identifier(TRIGGER), s=s, function=on_assignment),
        sql.SQL(
            "CREATE OR REPLACE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS $$"
            " BEGIN IF EXISTS (SELECT 1 FROM {s}.conversation_assignments a"
            " WHERE a.conversation_id = NEW.conversation_id AND a.state = 'assigned'"
            " AND a.assignee_id IS NOT NULL) THEN PERFORM pg_notify({channel}, NEW.contact_wa_id);"
            " END IF; RETURN NULL; END $$"
        ).format(function=on_conversation, s=s, channel=sql.Literal(channel)),
        sql.SQL(
            "CREATE OR REPLACE TRIGGER {name} AFTER INSERT ON {s}.conversations"
            " FOR EACH ROW WHEN (NEW.status = 'open') EXECUTE FUNCTION {function}()"
        ).format(name=sql.Identifier(TRIGGER), s=s, function=on_conversation),
    ]


def drop_triggers(schema: str, tables: Iterable[str]) -> list[sql.Composed]:
    return [
        sql.SQL("DROP TRIGGER IF EXISTS {name} ON {table}").format(
            name=sql.Identifier(TRIGGER), table=sql.Identifier(schema, table)
        )
        for table in tables
    ]


def execute(conninfo: str, statements: Iterable[sql.Composed]) -> None:
    with psycopg.connect(conninfo, autocommit=True) as connection:
        for statement in statements:
            connection.execute(statement)


class Listener:
    """A process that LISTENs on a channel and stamps the first arrival of each wanted key."""

    def __init__(self, conninfo: str, channel: str, wanted: Iterable[str], out: Path) -> None:
        context = multiprocessing.get_context("spawn")
        self.out = out
        self._ready = context.Event()
        self._stop = context.Event()
        self._count: Synchronized[int] = context.Value("i", 0)
        self._process = context.Process(
            target=_listen,
            args=(
                conninfo,
                channel,
                sorted(set(wanted)),
                out,
                self._ready,
                self._stop,
                self._count,
            ),
            name="bench-listener",
        )

    def start(self) -> None:
        self._process.start()
        if not self._ready.wait(30):
            self._process.kill()
            raise RuntimeError("the arrival listener did not start within 30 s")

    @property
    def count(self) -> int:
        """Wanted keys seen so far."""
        return int(self._count.value)

    def stop(self) -> dict[str, float]:
        """Stop listening; the first arrival time of every wanted key seen."""
        self._stop.set()
        self._process.join(30)
        if self._process.is_alive():
            self._process.kill()
            raise RuntimeError("the arrival listener did not stop")
        arrivals: dict[str, float] = orjson.loads(self.out.read_bytes())
        return arrivals


def _listen(
    conninfo: str,
    channel: str,
    wanted_keys: list[str],
    out: Path,
    ready: Event,
    stop: Event,
    count: Any,
) -> None:
    wanted = set(wanted_keys)
    arrivals: dict[str, float] = {}
    with psycopg.connect(conninfo, autocommit=True) as connection:
        connection.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
        ready.set()
        while not stop.is_set():
            for notification in connection.notifies(timeout=0.1):
                now = time.monotonic()
                key = notification.payload
                if key in wanted and key not in arrivals:
                    arrivals[key] = now
                    with count.get_lock():
                        count.value += 1
    out.write_bytes(orjson.dumps(arrivals))
