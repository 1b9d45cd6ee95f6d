"""The bench's instrument on the real PostgreSQL and Kafka (no figures, no timed assertions):
the arrival triggers notify exactly what a read model shows, and the raw pipeline carries a
signed webhook to its history and refuses a bad signature."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import psycopg
import pytest
from psycopg import sql

from bench import arrivals
from bench.systems import Infrastructure, RawPipeline
from bench.webhooks import sign, text_message
from services.settings import Settings
from tests.harness import eventually

pytestmark = pytest.mark.integration


@pytest.fixture
def schema(settings: Settings) -> Iterator[str]:
    name = settings.schema("benchtest")
    with psycopg.connect(settings.database_url, autocommit=True) as connection:
        connection.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(name)))
    yield name
    with psycopg.connect(settings.database_url, autocommit=True) as connection:
        connection.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(name)))


def run(settings: Settings, schema: str, statement: str, *params: object) -> None:
    with psycopg.connect(settings.database_url, autocommit=True) as connection:
        connection.execute(sql.SQL(statement).format(s=sql.Identifier(schema)), params)


def listen(settings: Settings, channel: str, wanted: list[str], out: Path) -> arrivals.Listener:
    listener = arrivals.Listener(settings.database_url, channel, wanted, out)
    listener.start()
    return listener


async def test_the_history_trigger_notifies_customer_lines_once_committed(
    settings: Settings, schema: str, tmp_path: Path
) -> None:
    run(
        settings,
        schema,
        "CREATE TABLE {s}.conversation_history (event_id uuid PRIMARY KEY, wamid text,"
        " author_kind text NOT NULL)",
    )
    channel = f"bench_test_{uuid.uuid4().hex[:8]}"
    arrivals.execute(
        settings.database_url,
        arrivals.history_trigger(schema, "conversation_history", channel, customer_only=True),
    )
    listener = listen(settings, channel, ["w.customer", "w.bot", "w.rolled-back"], tmp_path / "a")
    try:
        insert = "INSERT INTO {s}.conversation_history VALUES (%s, %s, %s)"
        run(settings, schema, insert, uuid.uuid4(), "w.bot", "bot")
        with psycopg.connect(settings.database_url) as connection:
            connection.execute(
                sql.SQL(insert).format(s=sql.Identifier(schema)),
                (uuid.uuid4(), "w.rolled-back", "customer"),
            )
            connection.rollback()  # never visible: never notified
        run(settings, schema, insert, uuid.uuid4(), "w.customer", "customer")
        await eventually(lambda: asyncio.sleep(0, listener.count), lambda n: n >= 1)
        await asyncio.sleep(0.5)  # anything else notified would have arrived by now
    finally:
        seen = listener.stop()
    assert set(seen) == {"w.customer"}


async def test_the_inbox_trigger_fires_when_the_second_of_its_two_rows_lands(
    settings: Settings, schema: str, tmp_path: Path
) -> None:
    run(
        settings,
        schema,
        "CREATE TABLE {s}.conversations (conversation_id uuid PRIMARY KEY,"
        " contact_wa_id text NOT NULL, status text NOT NULL)",
    )
    run(
        settings,
        schema,
        "CREATE TABLE {s}.conversation_assignments (conversation_id uuid PRIMARY KEY,"
        " state text NOT NULL, assignee_id uuid)",
    )
    channel = f"bench_test_{uuid.uuid4().hex[:8]}"
    arrivals.execute(settings.database_url, arrivals.inbox_trigger(schema, channel))
    contacts = ["c.assigned-last", "c.opened-last", "c.queued", "c.closed"]
    listener = listen(settings, channel, contacts, tmp_path / "a")
    conversation = {c: uuid.uuid4() for c in contacts}
    add_conversation = "INSERT INTO {s}.conversations VALUES (%s, %s, %s)"
    assign = "INSERT INTO {s}.conversation_assignments VALUES (%s, %s, %s)"
    try:
        # The conversation first, then its assignment: the assignment notifies.
        run(settings, schema, add_conversation, conversation[contacts[0]], contacts[0], "open")
        run(settings, schema, assign, conversation[contacts[0]], "queued", None)
        run(
            settings,
            schema,
            "UPDATE {s}.conversation_assignments SET state = 'assigned', assignee_id = %s"
            " WHERE conversation_id = %s",
            uuid.uuid4(),
            conversation[contacts[0]],
        )
        # The assignment first (another topic may be ahead), then the conversation.
        run(settings, schema, assign, conversation[contacts[1]], "assigned", uuid.uuid4())
        run(settings, schema, add_conversation, conversation[contacts[1]], contacts[1], "open")
        # Queued: in a queue, not in anyone's inbox. Closed: not in the inbox either.
        run(settings, schema, add_conversation, conversation[contacts[2]], contacts[2], "open")
        run(settings, schema, assign, conversation[contacts[2]], "queued", None)
        run(settings, schema, add_conversation, conversation[contacts[3]], contacts[3], "closed")
        run(settings, schema, assign, conversation[contacts[3]], "assigned", uuid.uuid4())
        await eventually(lambda: asyncio.sleep(0, listener.count), lambda n: n >= 2)
        await asyncio.sleep(0.5)
    finally:
        seen = listener.stop()
    assert set(seen) == {"c.assigned-last", "c.opened-last"}


async def test_the_raw_pipeline_carries_a_signed_webhook_to_its_history(
    settings: Settings, tmp_path: Path
) -> None:
    infra = Infrastructure(settings.kafka_bootstrap, settings.database_url)
    raw = RawPipeline(infra, tmp_path)
    channel = f"bench_test_{uuid.uuid4().hex[:8]}"
    try:
        await raw.start()
        arrivals.execute(settings.database_url, raw.history_trigger(channel))
        wamids = [f"wamid.raw.{n}" for n in range(5)]
        listener = listen(settings, channel, wamids, tmp_path / "a")
        try:
            async with aiohttp.ClientSession() as session:
                forged = sign("not-the-secret", text_message("1", "57300", "w.x", "hola", 1))
                async with session.post(
                    raw.url + "/webhooks/whatsapp",
                    data=forged.body,
                    headers={"X-Hub-Signature-256": forged.signature},
                ) as response:
                    assert response.status == 401
                for n, wamid in enumerate(wamids):
                    body = sign(raw.secret, text_message("1", f"5730{n}", wamid, "hola", 1))
                    async with session.post(
                        raw.url + "/webhooks/whatsapp",
                        data=body.body,
                        headers={"X-Hub-Signature-256": body.signature},
                    ) as response:
                        assert response.status == 200, await response.text()
            await eventually(
                lambda: asyncio.sleep(0, listener.count), lambda n: n == len(wamids), within=60
            )
        finally:
            seen = listener.stop()
        assert set(seen) == set(wamids)
        with psycopg.connect(settings.database_url, autocommit=True) as connection:
            rows = connection.execute(
                sql.SQL("SELECT count(*), count(DISTINCT wamid) FROM {}").format(
                    raw.config.table("history")
                )
            ).fetchone()
        assert rows == (5, 5)
    finally:
        await raw.stop()
        await raw.cleanup()
