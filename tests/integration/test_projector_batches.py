"""The projector folds a batch in one transaction, set-based, with the fold's semantics.

On the real PostgreSQL: the same events folded one per transaction (as ``projections.as_of``
and the projector before batches did) and in batches of any size give the same rows in every
read model, the change feed in the same order; a batch's statements do not grow with its
events; the change feed's channel is notified once per workspace per batch; and on the
runtime, a re-published event is skipped while a rebuild replays everything again.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import psycopg
import pytest
from eventsourcing.persistence import Tracking
from psycopg.rows import dict_row
from psycopg.sql import SQL, Identifier

from events.assignment import ConversationAssigned, ConversationQueued, Decision
from events.base import Payload
from events.catalogue import CONVERSATION_EVENTS_TOPIC, build_registry
from events.codec import encode
from events.conversation import (
    BusinessMessageEchoed,
    ConversationClosed,
    ConversationStarted,
    CustomerMessageReceived,
    MessageEdited,
    MessageRevoked,
    MessageStatusUpdated,
)
from events.envelope import Actor, Envelope
from events.expiry import DeadlineSet
from events.outbound import OutboundMessageQueued, OutboundMessageSent
from events.reads import ConversationRead
from projections.app import Projector
from projections.queries import change_channel
from projections.recorder import TABLES, ProjectionRecorder
from runtime.consumer import Consumer
from runtime.postgres import open_datastore
from runtime.records import Delivery, Record
from runtime.store import EventStore
from services.settings import Settings

pytestmark = pytest.mark.integration

AT = datetime(2027, 5, 3, 9, tzinfo=UTC)
ANA = UUID(int=77)
GROUP = UUID(int=88)
ORDER_BY = {
    "applied_events": "event_id",
    "conversations": "conversation_id",
    "conversation_history": "event_id",
    "deliveries": "message_id",
    "wamid_statuses": "workspace_id, wamid",
    "conversation_assignments": "conversation_id",
    "changes": "seq",
    "conversation_reads": "conversation_id, member_id",
    "conversation_deadlines": "conversation_id",
    "group_last_assignments": "group_id, member_id",
}


class Story:
    """Events of several conversations of two workspaces, interleaved as topics deliver them."""

    def __init__(self) -> None:
        self.events: list[Envelope] = []

    def add(self, workspace: UUID, conversation: UUID, payload: Payload) -> Envelope:
        n = len(self.events) + 1
        envelope = Envelope.wrap(
            payload,
            event_id=uuid4(),
            stream_id=str(conversation),
            workspace_id=workspace,
            occurred_at=AT + timedelta(seconds=n),
            correlation_id=uuid4(),
            causation_id=None,
            actor=Actor(kind="system"),
        )
        self.events.append(envelope)
        return envelope


def decision(outcome: str) -> Decision:
    return Decision(rotation="available", rule="the rule", candidates=[], outcome=outcome)


def conversation_story(story: Story, workspace: UUID, conversation: UUID, contact: str) -> None:
    """One conversation's life: messages (a NUL among them), a bot turn sent and seen, an
    echo whose status comes first, an edit, a deletion, a hand-off, a read, a deadline."""
    at = AT

    def add(payload: Payload) -> Envelope:
        return story.add(workspace, conversation, payload)

    def message(n: int, text: str) -> CustomerMessageReceived:
        return CustomerMessageReceived(
            conversation_id=conversation,
            wamid=f"{contact}-w{n}",
            sequence=n,
            kind="text",
            text=text,
            reply_id=None,
            content={"body": text},
            context_wamid=None,
            sent_at=at + timedelta(seconds=n),
        )

    add(
        ConversationStarted(
            conversation_id=conversation,
            phone_number_id="4801",
            display_phone_number="57300",
            contact_wa_id=contact,
            contact_name="Vale\x00ntina",
            started_at=at,
        )
    )
    first = add(message(1, "hola"))
    add(message(2, "con \x00 nul"))
    message_id = uuid4()
    add(
        OutboundMessageQueued(
            message_id=message_id,
            conversation_id=conversation,
            sequence=1,
            phone_number_id="4801",
            to=contact,
            kind="text",
            text="¿En qué te ayudo?",
            options=[],
            list_button=None,
            template=None,
            author="bot",
            author_id=None,
            queued_at=at + timedelta(seconds=3),
        )
    )
    add(
        OutboundMessageSent(
            message_id=message_id,
            conversation_id=conversation,
            wamid=f"{contact}-out1",
            attempts=1,
            sent_at=at + timedelta(seconds=4),
        )
    )
    for status in ("delivered", "read"):
        add(
            MessageStatusUpdated(
                conversation_id=conversation,
                wamid=f"{contact}-out1",
                status=status,
                recipient_wa_id=contact,
                status_at=at + timedelta(seconds=5),
                errors=[],
                pricing=None,
            )
        )
    # Meta's status of a message sent from the business app, before its echo.
    add(
        MessageStatusUpdated(
            conversation_id=conversation,
            wamid=f"{contact}-echo",
            status="delivered",
            recipient_wa_id=contact,
            status_at=at + timedelta(seconds=6),
            errors=[],
            pricing=None,
        )
    )
    add(
        BusinessMessageEchoed(
            conversation_id=conversation,
            wamid=f"{contact}-echo",
            kind="text",
            text="desde la app",
            content={"body": "desde la app"},
            context=None,
            sent_at=at + timedelta(seconds=6),
            received_at=at + timedelta(seconds=7),
        )
    )
    add(message(3, "me equivoqué"))
    add(
        MessageEdited(
            conversation_id=conversation,
            wamid=f"{contact}-w3",
            edit_wamid=f"{contact}-e3",
            author="customer",
            kind="text",
            text="corregido",
            content={"body": "corregido"},
            edited_at=at + timedelta(seconds=8),
        )
    )
    add(
        MessageRevoked(
            conversation_id=conversation,
            wamid=f"{contact}-w2",
            revoke_wamid=f"{contact}-r2",
            author="customer",
            revoked_at=at + timedelta(seconds=9),
        )
    )
    add(
        ConversationQueued(
            conversation_id=conversation,
            workspace_id=workspace,
            group_id=GROUP,
            rotation="available",
            claim_only=False,
            decision=decision("nobody available: queued"),
            queued_at=at + timedelta(seconds=10),
            waiting_since=at + timedelta(seconds=10),
            arrival=1,
        )
    )
    add(message(4, "¿hay alguien?"))
    add(
        ConversationAssigned(
            conversation_id=conversation,
            workspace_id=workspace,
            group_id=GROUP,
            member_id=ANA,
            member_name="Ana",
            via="queue",
            decision=decision("assigned to Ana"),
            assigned_at=at + timedelta(seconds=11),
        )
    )
    add(
        ConversationRead(
            conversation_id=conversation,
            member_id=ANA,
            up_to=3,
            read_at=at + timedelta(seconds=12),
        )
    )
    add(
        DeadlineSet(
            conversation_id=conversation,
            workspace_id=workspace,
            phone_number_id="4801",
            contact_wa_id=contact,
            deadline=at + timedelta(hours=24),
            latest=at + timedelta(seconds=12),
            cause="meta_24h",
        )
    )
    add(message(5, "gracias"))
    story.events.append(first)  # the relay published it again after a crash
    add(ConversationClosed(conversation_id=conversation, reason="agent", closed_at=at))


def interleaved_story() -> list[Envelope]:
    """Three conversations in two workspaces, their events interleaved (as partitions of
    several topics arrive in one poll)."""
    stories = []
    for workspace, conversation, contact in (
        (UUID(int=1), UUID(int=101), "5731"),
        (UUID(int=1), UUID(int=102), "5732"),
        (UUID(int=2), UUID(int=103), "5733"),
    ):
        story = Story()
        conversation_story(story, workspace, conversation, contact)
        stories.append(story.events)
    mixed: list[Envelope] = []
    for index in range(max(len(events) for events in stories)):
        mixed.extend(events[index] for events in stories if index < len(events))
    return mixed


@contextmanager
def recorder_in(settings: Settings, name: str) -> Iterator[ProjectionRecorder]:
    schema = settings.schema(name)
    datastore = open_datastore(settings, schema)
    try:
        recorder = ProjectionRecorder(datastore)
        recorder.create_table()
        yield recorder
    finally:
        datastore.close()
        with psycopg.connect(settings.database().conninfo(), autocommit=True) as connection:
            connection.execute(SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(Identifier(schema)))


def read_models(recorder: ProjectionRecorder) -> dict[str, list[dict[str, object]]]:
    rows: dict[str, list[dict[str, object]]] = {}
    with recorder.datastore.transaction(commit=False) as cursor:
        for table in TABLES:
            order = ORDER_BY.get(table, "1")
            cursor.execute(
                SQL("SELECT * FROM {}.{} ORDER BY " + order).format(
                    recorder.schema, Identifier(table)
                )
            )
            rows[table] = [dict(row) for row in cursor.fetchall()]
    return rows


def fold_in_batches(recorder: ProjectionRecorder, events: Sequence[Envelope], size: int) -> None:
    for start in range(0, len(events), size):
        with recorder.datastore.transaction(commit=True) as cursor:
            recorder.fold(cursor, events[start : start + size])


@pytest.mark.parametrize("size", [1, 4, 7, 1000])
def test_folding_in_batches_gives_the_rows_of_one_event_per_transaction(
    settings: Settings, size: int
) -> None:
    events = interleaved_story()
    with (
        recorder_in(settings, "projections_one") as one,
        recorder_in(settings, "projections_batched") as batched,
    ):
        for offset, envelope in enumerate(events):
            one.project(envelope, Tracking("story#0", offset + 1))
        fold_in_batches(batched, events, size)
        expected, found = read_models(one), read_models(batched)
    # The story reached every kind of row (or the comparison would prove little).
    for table in ORDER_BY:
        assert expected[table], f"the story wrote nothing to {table}"
    assert [line["text"] for line in expected["conversation_history"] if line["text"]]
    for table in TABLES:
        assert found[table] == expected[table], table


def test_a_batch_sends_the_same_statements_whatever_its_number_of_messages(
    settings: Settings,
) -> None:
    """Customer messages into the history, conversation rows, holders and change feed are
    written set-based: a batch of 200 messages sends what a batch of 20 does."""
    workspace = UUID(int=5)
    conversations = [UUID(int=500 + n) for n in range(10)]
    opening = Story()
    for n, conversation in enumerate(conversations):
        opening.add(
            workspace,
            conversation,
            ConversationStarted(
                conversation_id=conversation,
                phone_number_id="4801",
                display_phone_number="57300",
                contact_wa_id=f"57{n}",
                contact_name=None,
                started_at=AT,
            ),
        )

    def messages(count: int, first: int) -> list[Envelope]:
        story = Story()
        for n in range(first, first + count):
            conversation = conversations[n % len(conversations)]
            story.add(
                workspace,
                conversation,
                CustomerMessageReceived(
                    conversation_id=conversation,
                    wamid=f"w{n}",
                    sequence=n,
                    kind="text",
                    text=f"message {n}",
                    reply_id=None,
                    content={"body": f"message {n}"},
                    context_wamid=None,
                    sent_at=AT + timedelta(seconds=n),
                ),
            )
        return story.events

    with recorder_in(settings, "projections_statements") as recorder:
        counts = []
        for batch in (opening.events, messages(20, 0), messages(200, 20)):
            with recorder.datastore.transaction(commit=True) as cursor:
                counts.append(recorder.fold(cursor, batch).statements)
        rows = read_models(recorder)
    assert counts[1] == counts[2] <= 8, counts
    assert len(rows["conversation_history"]) == 220
    assert len(rows["changes"]) == 230
    assert {row["message_count"] for row in rows["conversations"]} == {22}


def test_the_change_feed_is_notified_once_per_workspace_per_batch(settings: Settings) -> None:
    events = interleaved_story()
    with (
        recorder_in(settings, "projections_notified") as recorder,
        psycopg.connect(settings.database().conninfo(), autocommit=True) as listener,
    ):
        channel = change_channel(recorder.datastore.schema)
        listener.execute(SQL("LISTEN {}").format(Identifier(channel)))
        with recorder.datastore.transaction(commit=True) as cursor:
            recorder.fold(cursor, events)
        with recorder.datastore.transaction(commit=True) as cursor:
            cursor.execute("SELECT pg_notify(%s, 'end')", (channel,))
        received = []
        for notify in listener.notifies(timeout=30):
            if notify.payload == "end":
                break
            received.append(notify.payload)
        changes = read_models(recorder)["changes"]
    assert sorted(received) == [str(UUID(int=1)), str(UUID(int=2))]
    # Every change is in the feed, in the order of the events.
    assert len(changes) > len(events) / 2
    times = [row["occurred_at"] for row in changes]
    assert times == sorted(times)  # type: ignore[type-var]


def record(envelope: Envelope, offset: int) -> Record:
    return Record(
        Delivery(
            topic=CONVERSATION_EVENTS_TOPIC.name,
            partition=0,
            offset=offset,
            key=envelope.stream_id.encode(),
            value=encode(envelope),
            timestamp_ms=0,
        ),
        envelope,
    )


def test_on_the_runtime_a_republished_event_is_skipped_and_a_rebuild_replays_all(
    settings: Settings,
) -> None:
    events = interleaved_story()
    records = [record(envelope, offset) for offset, envelope in enumerate(events)]
    registry = build_registry()
    with recorder_in(settings, "projections_runtime") as recorder:
        consumer = Consumer("projector", registry)
        consumer.bind(EventStore(recorder, registry), Projector(recorder))
        half = len(records) // 2
        consumer.commit_batch(records[:half])
        consumer.commit_batch(records[half:])
        once = read_models(recorder)
        # The relay publishes the first half again after a crash: new offsets, same events.
        again = [record(r.envelope, len(records) + n) for n, r in enumerate(records[:half])]
        consumer.commit_batch(again)
        assert read_models(recorder) == once

        # `switchboard projections rebuild`, the projector stopped; then it replays.
        recorder.rebuild()
        assert read_models(recorder)["conversation_history"] == []
        consumer = Consumer("projector", registry)
        consumer.bind(EventStore(recorder, registry), Projector(recorder))
        consumer.commit_batch(records + again)
        rebuilt = read_models(recorder)
        with psycopg.connect(
            settings.database().conninfo(), row_factory=dict_row, autocommit=True
        ) as connection:
            positions = connection.execute(
                SQL("SELECT application_name, notification_id FROM {}.tracking").format(
                    recorder.schema
                )
            ).fetchall()
        seek = EventStore(recorder, registry).positions(
            [f"{CONVERSATION_EVENTS_TOPIC.name}#0", "unread.topic#3"]
        )
    name = f"{CONVERSATION_EVENTS_TOPIC.name}#0"
    # What a rebalance seeks to, every partition in one query.
    assert seek == {name: len(records) + half, "unread.topic#3": None}
    assert [row["notification_id"] for row in positions if row["application_name"] == name] == [
        len(records) + half
    ]
    for table in TABLES:
        if table != "changes":  # a feed: rebuilt rows come after the seqs of the first build
            assert rebuilt[table] == once[table], table
    assert [{**row, "seq": None} for row in rebuilt["changes"]] == [
        {**row, "seq": None} for row in once["changes"]
    ]
