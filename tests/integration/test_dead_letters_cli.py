"""``switchboard dead-letters``: see why a record was parked, fix the cause, put it back.

A webhook's record fails in the inbound consumer for a cause outside the record (a trigger
in the inbound store refuses its events, standing in for a bug or a bad migration), three
times, so it is parked. Once the trigger is gone, replaying the dead letter twice makes the
customer's message land exactly once: the second copy, at a new offset, is recognised.
Real broker, real stores, the CLI as a user runs it.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import anyio.to_thread
import orjson
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from eventsourcing.persistence import StoredEvent

from events.catalogue import DIRECTORY_EVENTS_TOPIC, WHATSAPP_INBOUND, build_registry
from events.codec import encode
from events.directory import WorkspaceCreated
from events.envelope import Actor, Envelope
from events.operations import RecordDeadLettered, StoredEventDeadLettered
from runtime.postgres import open_datastore
from runtime.relay.app import run_relays
from runtime.store import EventStore
from services.operations.dead_letter_io import read_dead_letters
from services.operations.dead_letters import DeadLetter
from services.settings import Settings
from services.workspaces import create_workspace
from tests.conftest import TEST_APP_SECRET
from tests.fake_graph import FakeGraphApi
from tests.harness import consumers, eventually, gateway_client, query
from tests.integration.test_agents import build_team
from tests.operations import switchboard, whole_system
from tests.webhooks import Text, messages_webhook, signed_headers

pytestmark = pytest.mark.integration
NUMBER = "480112093300777"
PILL = "poison-pill"


async def parked(settings: Settings) -> list[DeadLetter]:
    found, problems = await read_dead_letters(settings)
    assert problems == []
    return found


async def records_at(
    settings: Settings, partition: int
) -> list[tuple[int, bytes | None, bytes | None, list[tuple[str, bytes]]]]:
    """(offset, key, value, headers) of every record of one whatsapp.inbound partition."""
    tp = TopicPartition(WHATSAPP_INBOUND.qualified(settings.topic_prefix), partition)
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, group_id=None)
    await consumer.start()
    try:
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        end = (await consumer.end_offsets([tp]))[tp]
        found: list[tuple[int, bytes | None, bytes | None, list[tuple[str, bytes]]]] = []
        while len(found) < end:
            batch = await consumer.getmany(tp, timeout_ms=1000)
            found.extend(
                (item.offset, item.key, item.value, list(item.headers))
                for item in batch.get(tp, [])
            )
        return found
    finally:
        await consumer.stop()


async def inbound_position(settings: Settings, partition: int) -> int | None:
    name = f"{WHATSAPP_INBOUND.qualified(settings.topic_prefix)}#{partition}"
    rows = await query(
        settings,
        "inbound",
        "SELECT max(notification_id) AS n FROM {s}.tracking WHERE application_name = %s",
        name,
    )
    position: int | None = rows[0]["n"]
    return position


async def messages_stored(settings: Settings, wamid: str) -> list[dict[str, Any]]:
    rows = await query(settings, "inbound", "SELECT state FROM {s}.events")
    events = [orjson.loads(bytes(row["state"])) for row in rows]
    return [
        event
        for event in events
        if event["event_type"] == "conversation.customer_message_received"
        and event["payload"]["wamid"] == wamid
    ]


async def test_a_parked_record_replayed_twice_once_fixed_is_handled_exactly_once(
    settings: Settings,
) -> None:
    async with consumers(settings), gateway_client(settings) as client:
        await create_workspace(settings, name="Acme", phone_number_id=NUMBER)
        # The cause: the inbound store refuses any event carrying the pill (not its dead letter).
        await query(
            settings,
            "inbound",
            "CREATE FUNCTION {s}.refuse_pill() RETURNS trigger LANGUAGE plpgsql AS $$"
            " BEGIN IF NEW.topic <> 'operations.record_dead_lettered'"
            f" AND position(convert_to('{PILL}', 'UTF8') in NEW.state) > 0"
            " THEN RAISE EXCEPTION 'refused by the test'; END IF; RETURN NEW; END $$",
        )
        await query(
            settings,
            "inbound",
            "CREATE TRIGGER refuse_pill BEFORE INSERT ON {s}.events"
            " FOR EACH ROW EXECUTE FUNCTION {s}.refuse_pill()",
        )
        wamid = f"wamid.{uuid.uuid4().hex}"
        body = messages_webhook(
            NUMBER, [Text("573009990001", wamid, f"{PILL} por favor", int(time.time()))]
        )
        sent = await client.post(
            "/webhooks/whatsapp", content=body, headers=signed_headers(TEST_APP_SECRET, body)
        )
        assert sent.status_code == 200, sent.text
        [dead] = await eventually(
            lambda: parked(settings), lambda found: len(found) == 1, within=30
        )
        payload = dead.envelope.payload
        assert isinstance(payload, RecordDeadLettered)
        assert payload.consumer == "inbound"
        assert "refused by the test" in payload.reason
        assert await messages_stored(settings, wamid) == []

        code, out, err = await switchboard(settings, "dead-letters", "list")
        assert code == 0, err
        [listed] = out.splitlines()
        source = f"{payload.source_topic}#{payload.source_partition}@{payload.source_offset}"
        assert listed.startswith(str(dead.id))
        assert "inbound" in listed
        assert source in listed
        assert "refused by the test" in listed

        code, out, err = await switchboard(settings, "dead-letters", "show", str(dead.id))
        assert code == 0, err
        shown = orjson.loads(out)
        assert shown["dead_letter"]["payload"]["reason"] == payload.reason
        assert shown["original"]["json"]["payload"]["message"]["id"] == wamid
        assert shown["replay_headers"]["event_type"] == "whatsapp.message_received"

        # Replayed while the cause holds, it is parked again: a dead letter of its new offset.
        code, _, err = await switchboard(settings, "dead-letters", "replay", str(dead.id))
        assert code == 0, err
        first, again = await eventually(
            lambda: parked(settings), lambda found: len(found) == 2, within=40
        )
        assert first.id == dead.id
        assert isinstance(again.envelope.payload, RecordDeadLettered)
        assert again.envelope.payload.source_offset == payload.source_offset + 1
        assert await messages_stored(settings, wamid) == []

        # The cause fixed, the record goes back twice more; it is handled once.
        await query(settings, "inbound", "DROP TRIGGER refuse_pill ON {s}.events")
        for _ in range(2):
            code, out, err = await switchboard(settings, "dead-letters", "replay", str(dead.id))
            assert code == 0, err
            assert f"replayed {dead.id} to {payload.source_topic}" in out
        partition = payload.source_partition
        records = await records_at(settings, partition)
        original, *replayed = [r for r in records if r[0] >= payload.source_offset]
        assert len(replayed) == 3
        for copy in replayed:
            assert copy[1:] == original[1:]  # key, value and headers as parked
        end = records[-1][0] + 1
        await eventually(lambda: inbound_position(settings, partition), lambda n: n == end)
        [message] = await messages_stored(settings, wamid)
        assert message["payload"]["text"] == f"{PILL} por favor"


async def position(settings: Settings, service: str, topic: str, partition: int) -> int | None:
    """The next offset ``service`` recorded as handled on a partition (its tracking table)."""
    rows = await query(
        settings,
        service,
        "SELECT max(notification_id) AS n FROM {s}.tracking WHERE application_name = %s",
        f"{topic}#{partition}",
    )
    found: int | None = rows[0]["n"]
    return found


async def stored(settings: Settings, service: str, conversation: str) -> list[dict[str, Any]]:
    rows = await query(settings, service, "SELECT state FROM {s}.events")
    events = [orjson.loads(bytes(row["state"])) for row in rows]
    return [
        event
        for event in events
        if conversation in (event["stream_id"], event["payload"].get("conversation_id"))
    ]


async def test_a_conversation_event_replayed_to_every_consumer_changes_only_the_one_that_parked_it(
    settings: Settings,
) -> None:
    """The harsh case: ``conversation.events`` is read by the flows, the assignment router,
    the dispatcher, the expiry service and the projector. The flows parked a customer's
    answer; putting it back twice reaches all five again: the flows act once, and nobody
    else shows it twice."""
    with FakeGraphApi() as graph:
        live = replace(
            settings, whatsapp_api_base_url=graph.base_url, whatsapp_access_token="test-token"
        )
        async with whole_system(live) as client:
            team = await build_team(live, client, capacity=5)
            team.clock = int(time.time()) - 60
            customer = "573000077777"
            await team.write(customer, "hola")
            [row] = await eventually(
                lambda: team._conversations(customer), lambda rows: len(rows) == 1
            )
            conversation = str(row["conversation_id"])
            await eventually(lambda: team.history(conversation), lambda lines: len(lines) >= 2)
            await query(
                live,
                "flows",
                "CREATE FUNCTION {s}.refuse_pill() RETURNS trigger LANGUAGE plpgsql AS $$"
                " BEGIN IF NEW.topic <> 'operations.record_dead_lettered'"
                f" AND position(convert_to('{PILL}', 'UTF8') in NEW.state) > 0"
                " THEN RAISE EXCEPTION 'refused by the test'; END IF; RETURN NEW; END $$",
            )
            await query(
                live,
                "flows",
                "CREATE TRIGGER refuse_pill BEFORE INSERT ON {s}.events"
                " FOR EACH ROW EXECUTE FUNCTION {s}.refuse_pill()",
            )
            await team.write(customer, PILL)
            [dead] = await eventually(
                lambda: parked(live), lambda found: len(found) == 1, within=40
            )
            payload = dead.envelope.payload
            assert isinstance(payload, RecordDeadLettered)
            assert (payload.consumer, payload.key) == ("flows", conversation)
            await query(live, "flows", "DROP TRIGGER refuse_pill ON {s}.events")
            for _ in range(2):
                code, _, err = await switchboard(live, "dead-letters", "replay", str(dead.id))
                assert code == 0, err

            topic, partition = payload.source_topic, payload.source_partition
            end = payload.source_offset + 3  # the record, then its two copies
            for service in ("flows", "assignment", "dispatcher", "expiry", "projections"):
                await eventually(
                    lambda service=service: position(live, service, topic, partition),  # type: ignore[misc]
                    lambda n: n is not None and n >= end,
                    within=40,
                )
            await eventually(
                lambda: stored(live, "assignment", conversation),
                lambda events: any(
                    e["event_type"] == "assignment.conversation_queued" for e in events
                ),
            )
            flows = await stored(live, "flows", conversation)
            history = await team.history(conversation)

    captured = [e for e in flows if e["event_type"] == "flow.answer_captured"]
    assert [e["payload"]["value"] for e in captured] == [PILL]
    assert [e["event_type"] for e in flows].count("flow.hand_off_requested") == 1
    decisions = [
        e["event_type"]
        for e in await stored(settings, "assignment", conversation)
        if e["event_type"].startswith("assignment.conversation_")
    ]
    assert decisions == ["assignment.conversation_queued"]
    assert [e["event_type"] for e in await stored(settings, "expiry", conversation)] == [
        "expiry.deadline_set"
    ]
    customer_lines = [line for line in history if line.get("author_kind") == "customer"]
    assert [line["text"] for line in customer_lines] == ["hola", PILL]


async def test_unknown_malformed_and_unreplayable_dead_letters_are_clear_errors(
    settings: Settings,
) -> None:
    code, out, err = await switchboard(settings, "dead-letters", "list")
    assert (code, out) == (0, "")
    unknown = str(uuid.uuid4())
    for verb in ("show", "replay"):
        code, out, err = await switchboard(settings, "dead-letters", verb, unknown)
        assert (code, out) == (1, ""), err
        assert f"no dead letter {unknown}" in err
        code, out, err = await switchboard(settings, "dead-letters", verb, "12")
        assert (code, out) == (2, ""), err
        assert "'12' is not a dead letter id" in err
        assert "Traceback" not in err


async def test_a_stored_event_the_relay_parked_goes_out_once_its_row_is_repaired(
    settings: Settings,
) -> None:
    """The relay parks an event whose type column disagrees with its bytes; replaying refuses
    while the row is wrong, and publishes it as the relay would once it is repaired."""
    datastore = await anyio.to_thread.run_sync(
        lambda: open_datastore(settings, settings.schema("directory"), pool_size=2)
    )
    workspace = uuid.uuid4()
    envelope = Envelope.wrap(
        WorkspaceCreated(workspace_id=workspace, name="Acme", time_zone="UTC"),
        event_id=uuid.uuid4(),
        stream_id=str(workspace),
        workspace_id=workspace,
        occurred_at=datetime.now(UTC),
        correlation_id=uuid.uuid4(),
        causation_id=None,
        actor=Actor(kind="system", id="test"),
    )
    try:
        store = await anyio.to_thread.run_sync(
            EventStore.create, settings, datastore, build_registry()
        )
        wrong = StoredEvent(
            originator_id=workspace,
            originator_version=1,
            topic="directory.misfiled",
            state=encode(envelope),
        )
        await anyio.to_thread.run_sync(lambda: store.recorder.insert_events([wrong]))
        task = asyncio.create_task(run_relays(settings, stores=("directory",)))
        try:
            [dead] = await eventually(
                lambda: parked(settings), lambda found: len(found) == 1, within=30
            )
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    finally:
        datastore.close()
    assert isinstance(dead.envelope.payload, StoredEventDeadLettered)
    code, out, err = await switchboard(settings, "dead-letters", "replay", str(dead.id))
    assert (code, out) == (1, "")
    assert "stored as 'directory.misfiled' but reads 'directory.workspace_created'" in err

    await query(
        settings,
        "directory",
        "UPDATE {s}.events SET topic = 'directory.workspace_created' WHERE notification_id = %s",
        dead.envelope.payload.notification_id,
    )
    code, out, err = await switchboard(settings, "dead-letters", "replay", str(dead.id))
    assert code == 0, err
    name = DIRECTORY_EVENTS_TOPIC.qualified(settings.topic_prefix)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap, group_id=None, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        consumer.subscribe([name])
        record = await asyncio.wait_for(consumer.getone(), 30)
    finally:
        await consumer.stop()
    assert record.key == str(workspace).encode()
    assert record.value == encode(envelope)
    assert dict(record.headers)["event_id"] == str(envelope.event_id).encode()
