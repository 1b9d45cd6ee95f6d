"""The assignment service on the real broker and database.

The helpers here publish what the directory, inbound and flows services would (the burst
and crash tests use them too).

The assignment app runs alone with the relay of its store: the tests put directory events,
conversation closes and hand-offs, claims and transfers on their topics themselves, keyed as
the other services key them, and read the decisions back from ``assignment.events`` and
from the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import psycopg
import pytest
from aiokafka import AIOKafkaProducer

from events.assignment import (
    ASSIGNMENT_EVENTS,
    AssignmentCommandRejected,
    ClaimConversation,
    ConversationAssigned,
    ConversationQueued,
    ConversationReleased,
    Decision,
    GroupNudged,
    TransferConversation,
    group_key,
)
from events.base import Payload
from events.catalogue import (
    ASSIGNMENT_EVENTS_TOPIC,
    CONVERSATION_EVENTS_TOPIC,
    DIRECTORY_EVENTS_TOPIC,
    HAND_OFF_REQUESTS_TOPIC,
    Topic,
)
from events.codec import decode, encode
from events.conversation import ConversationClosed
from events.directory import (
    AgentStatus,
    AgentStatusChanged,
    GroupCreated,
    GroupDeleted,
    GroupMemberAdded,
    GroupMemberRemoved,
    MemberAdded,
    MemberDeactivated,
    MemberUpdated,
    Role,
)
from events.envelope import Actor, Envelope
from events.flows import HandOffRequested, Rotation
from runtime.consumer import Consumer
from runtime.kafka import ensure_topics
from runtime.postgres import open_recorder
from runtime.records import Delivery
from runtime.relay.app import run_relays
from runtime.store import EventStore, NewEvent
from services.assignment.app import create_app
from services.assignment.handlers import RouterHandler
from services.assignment.recorder import AssignmentRecorder, CapacityConflict, ClosedMeanwhile
from services.settings import Settings
from tests.harness import REGISTRY, eventually, query, topic_records

T0 = datetime(2027, 5, 3, 9, 0, tzinfo=UTC)
SYSTEM = Actor(kind="system", id="test")


@contextlib.asynccontextmanager
async def assignment_running(settings: Settings, *, replicas: int = 1) -> AsyncIterator[None]:
    """``replicas`` assignment apps (one consumer group: they share the partitions) and the
    relay of the assignment store."""
    async with contextlib.AsyncExitStack() as stack:
        for _ in range(replicas):
            app = create_app(settings)
            await stack.enter_async_context(app.lifespan_context())
            await app.start()
            stack.push_async_callback(app.stop)
        relay = asyncio.create_task(run_relays(settings, ("assignment",)))

        async def stop_relay() -> None:
            relay.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await relay

        stack.push_async_callback(stop_relay)
        yield


class Upstream:
    """A workspace's directory, its conversations and their hand-offs, put on Kafka."""

    def __init__(self, settings: Settings, producer: AIOKafkaProducer) -> None:
        self.settings = settings
        self.producer = producer
        self.workspace = uuid.uuid4()
        self.now = T0
        self.names: dict[UUID, str] = {}

    def tick(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now

    def envelope(self, payload: Payload, key: str) -> Envelope:
        event_id = uuid.uuid4()
        return Envelope.wrap(
            payload,
            event_id=event_id,
            stream_id=key,
            workspace_id=self.workspace,
            occurred_at=self.tick(),
            correlation_id=event_id,
            causation_id=None,
            actor=SYSTEM,
        )

    async def publish(self, topic: Topic, payload: Payload, key: str, *, wait: bool = True) -> Any:
        envelope = self.envelope(payload, key)
        send = self.producer.send_and_wait if wait else self.producer.send
        return await send(
            topic.qualified(self.settings.topic_prefix), encode(envelope), key=key.encode()
        )

    async def directory(self, payload: Payload) -> None:
        await self.publish(DIRECTORY_EVENTS_TOPIC, payload, str(self.workspace))

    async def member(
        self,
        name: str,
        *,
        status: AgentStatus = "available",
        capacity: int = 3,
        role: Role = "agent",
    ) -> UUID:
        member_id = uuid.uuid4()
        self.names[member_id] = name
        await self.directory(
            MemberAdded(
                workspace_id=self.workspace,
                member_id=member_id,
                name=name,
                role=role,
                capacity=capacity,
            )
        )
        if status != "offline":
            await self.status(member_id, status)
        return member_id

    async def status(
        self, member_id: UUID, status: AgentStatus, previous: AgentStatus = "offline"
    ) -> None:
        await self.directory(
            AgentStatusChanged(
                workspace_id=self.workspace,
                member_id=member_id,
                status=status,
                previous=previous,
                reason="set by the agent",
            )
        )

    async def group(self, name: str, *members: UUID) -> UUID:
        group_id = uuid.uuid4()
        await self.directory(
            GroupCreated(workspace_id=self.workspace, group_id=group_id, name=name)
        )
        for member_id in members:
            await self.directory(
                GroupMemberAdded(
                    workspace_id=self.workspace, group_id=group_id, member_id=member_id
                )
            )
        return group_id

    def hand_off_request(
        self,
        group_id: UUID | None,
        rotation: Rotation = "available",
        member_id: UUID | None = None,
    ) -> HandOffRequested:
        return HandOffRequested(
            conversation_id=uuid.uuid4(),
            workspace_id=self.workspace,
            phone_number_id="480112093385611",
            contact_wa_id="573001112233",
            group_id=group_id,
            rotation=rotation,
            member_id=member_id,
            reason="the flow asked for an agent",
            requested_at=self.now,
        )

    async def hand_off(
        self,
        group_id: UUID | None,
        rotation: Rotation = "available",
        member_id: UUID | None = None,
    ) -> UUID:
        request = self.hand_off_request(group_id, rotation, member_id)
        await self.publish(HAND_OFF_REQUESTS_TOPIC, request, group_key(self.workspace, group_id))
        return request.conversation_id

    async def claim(self, group_id: UUID | None, conversation: UUID, member_id: UUID) -> None:
        claim = ClaimConversation(
            conversation_id=conversation, workspace_id=self.workspace, member_id=member_id
        )
        await self.publish(HAND_OFF_REQUESTS_TOPIC, claim, group_key(self.workspace, group_id))

    async def close(self, conversation: UUID) -> None:
        closed = ConversationClosed(
            conversation_id=conversation, reason="agent", closed_at=self.tick()
        )
        await self.publish(CONVERSATION_EVENTS_TOPIC, closed, str(conversation))


@contextlib.asynccontextmanager
async def upstream_of(settings: Settings) -> AsyncIterator[Upstream]:
    await ensure_topics(settings)
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap, acks="all", enable_idempotence=True
    )
    await producer.start()
    try:
        yield Upstream(settings, producer)
    finally:
        await producer.stop()


async def stored_decisions(settings: Settings) -> list[Envelope]:
    """Every decision of the assignment store, in store order."""
    types = [payload.event_type for payload in ASSIGNMENT_EVENTS]
    try:
        rows = await query(
            settings,
            "assignment",
            "SELECT state FROM {s}.events WHERE topic = ANY(%s) ORDER BY notification_id",
            types,
        )
    except psycopg.errors.UndefinedTable:
        return []
    return [decode(bytes(row["state"]), REGISTRY) for row in rows]


async def group_streams(settings: Settings) -> dict[str, list[Envelope]]:
    """Each stream's events, in stream order, by originator id."""
    rows = await query(
        settings,
        "assignment",
        "SELECT originator_id, state FROM {s}.events ORDER BY originator_id, originator_version",
    )
    streams: dict[str, list[Envelope]] = {}
    for row in rows:
        streams.setdefault(str(row["originator_id"]), []).append(
            decode(bytes(row["state"]), REGISTRY)
        )
    return streams


# -- the tests ------------------------------------------------------------------------------

pytestmark = pytest.mark.integration


async def decisions_of(settings: Settings, count: int) -> list[Envelope]:
    """The records of ``assignment.events`` once there are ``count`` of them."""
    return await eventually(
        lambda: topic_records(settings, ASSIGNMENT_EVENTS_TOPIC),
        lambda found: len(found) >= count,
        within=30,
        interval=0.2,
    )


def assigned(upstream: Upstream, records: list[Envelope]) -> dict[UUID, str]:
    return {
        e.payload.conversation_id: upstream.names[e.payload.member_id]
        for e in records
        if isinstance(e.payload, ConversationAssigned)
    }


async def test_rotations_claims_and_conflicts_on_the_real_broker(settings: Settings) -> None:
    async with upstream_of(settings) as up, assignment_running(settings):
        a = await up.member("A")
        b = await up.member("B", status="unavailable")
        c = await up.member("C")
        fresh_a = await up.member("A2")
        fresh_b = await up.member("B2", status="unavailable")
        fresh_c = await up.member("C2")
        ventas = await up.group("Ventas", a, b, c)
        soporte = await up.group("Soporte", fresh_a, fresh_b, fresh_c)
        available = [await up.hand_off(ventas) for _ in range(3)]
        every = [await up.hand_off(soporte, "all") for _ in range(3)]
        named = await up.hand_off(ventas, "specific", c)
        nobody = await up.hand_off(ventas, "no_owner")
        await decisions_of(settings, 8)
        await up.claim(ventas, nobody, b)
        await up.claim(ventas, nobody, a)
        records = await decisions_of(settings, 10)

    chosen = assigned(up, records)
    assert [chosen[x] for x in available] == ["A", "C", "A"]
    assert [chosen[x] for x in every] == ["A2", "B2", "C2"]
    assert chosen[named] == "C"
    assert chosen[nobody] == "B"
    [queued] = [e.payload for e in records if isinstance(e.payload, ConversationQueued)]
    assert (queued.conversation_id, queued.claim_only) == (nobody, True)
    [rejected] = [e.payload for e in records if isinstance(e.payload, AssignmentCommandRejected)]
    assert (rejected.conflict, rejected.reason) == (True, "already assigned to B")
    # Keyed by conversation, so each conversation's decisions stay in order.
    for record in records:
        assert record.stream_id == str(record.payload.conversation_id)  # type: ignore[attr-defined]
    assert len(records) == 10


async def test_the_fourth_waits_at_capacity_and_takes_the_room_a_close_frees(
    settings: Settings,
) -> None:
    async with upstream_of(settings) as up, assignment_running(settings):
        members = [await up.member(name, capacity=1) for name in "ABC"]
        group = await up.group("Soporte", *members)
        conversations = [await up.hand_off(group) for _ in range(4)]
        first = await decisions_of(settings, 4)
        await up.close(conversations[1])  # B's
        await decisions_of(settings, 6)
        records = await stored_decisions(settings)  # in the order they were decided

    assert [assigned(up, first).get(x) for x in conversations] == ["A", "B", "C", None]
    later = records[4:]
    assert {type(e.payload) for e in later} == {ConversationReleased, ConversationAssigned}
    [released] = [e.payload for e in later if isinstance(e.payload, ConversationReleased)]
    assert (released.conversation_id, released.reason) == (conversations[1], "closed")
    [taken] = [e.payload for e in later if isinstance(e.payload, ConversationAssigned)]
    assert (taken.conversation_id, up.names[taken.member_id], taken.via) == (
        conversations[3],
        "B",
        "queue",
    )
    nudges = [
        e.payload
        for e in await topic_records(settings, HAND_OFF_REQUESTS_TOPIC)
        if isinstance(e.payload, GroupNudged)
    ]
    assert [(n.cause, n.conversation_id) for n in nudges] == [
        ("conversation_closed", conversations[1])
    ]


async def test_a_member_becoming_available_takes_the_queue_longest_waiting_first(
    settings: Settings,
) -> None:
    async with upstream_of(settings) as up, assignment_running(settings):
        a = await up.member("A", status="offline")
        group = await up.group("Ventas", a)
        waiting = [await up.hand_off(group) for _ in range(2)]
        await decisions_of(settings, 2)
        await up.status(a, "available")
        await decisions_of(settings, 4)
        records = await stored_decisions(settings)
        deactivated = await up.member("Z")
        await up.directory(MemberDeactivated(workspace_id=up.workspace, member_id=deactivated))

    queued = [e.payload for e in records[:2] if isinstance(e.payload, ConversationQueued)]
    assert len(queued) == 2
    assert "A: status offline" in queued[0].decision.outcome
    taken = [e.payload for e in records[2:] if isinstance(e.payload, ConversationAssigned)]
    assert [t.conversation_id for t in taken] == waiting
    assert {t.via for t in taken} == {"queue"}


async def test_a_hand_off_to_an_unknown_group_waits_in_the_workspace_queue(
    settings: Settings,
) -> None:
    async with upstream_of(settings) as up, assignment_running(settings):
        await up.member("A")
        unknown = uuid.uuid4()
        conversation = await up.hand_off(unknown)
        [record] = await decisions_of(settings, 1)

    queued = record.payload
    assert isinstance(queued, ConversationQueued)
    assert (queued.conversation_id, queued.group_id) == (conversation, None)
    assert f"group {unknown} is unknown" in queued.decision.outcome


# -- the guards of the append transaction ----------------------------------------------------


def _assigned_event(up: Upstream, member_id: UUID, group_id: UUID, via: str) -> NewEvent:
    conversation = uuid.uuid4()
    payload = ConversationAssigned(
        conversation_id=conversation,
        workspace_id=up.workspace,
        group_id=group_id,
        member_id=member_id,
        member_name="A",
        via=via,  # type: ignore[arg-type]
        decision=Decision(rotation="available", rule="test", candidates=[], outcome="test"),
        assigned_at=up.now,
    )
    return NewEvent(uuid.uuid4(), 1, up.envelope(payload, str(conversation)))


def route(
    store: EventStore, recorder: AssignmentRecorder, envelope: Envelope, topic: str, offset: int
) -> None:
    """Hand one record to the router as the runtime does (its own batch)."""
    consumer = Consumer("assignment-router", REGISTRY)
    consumer.bind(store, RouterHandler(recorder))
    delivery = Delivery(
        topic=topic,
        partition=0,
        offset=offset,
        key=envelope.stream_id.encode(),
        value=encode(envelope),
        timestamp_ms=0,
    )
    consumer.commit_batch([consumer.received(delivery)])


def test_the_append_refuses_to_take_a_member_over_capacity_or_to_queue_a_closed_one(
    settings: Settings,
) -> None:
    """What a replica that lost a race meets: the views moved under its decision."""
    up = Upstream(settings, None)  # nothing is published here
    recorder = open_recorder(settings, "assignment", AssignmentRecorder)
    try:
        store = EventStore(recorder, REGISTRY)
        member_id, group_id = uuid.uuid4(), uuid.uuid4()
        added = MemberAdded(
            workspace_id=up.workspace,
            member_id=member_id,
            name="A",
            role="agent",
            capacity=1,
        )
        route(store, recorder, up.envelope(added, str(up.workspace)), "directory", 0)
        store.append([_assigned_event(up, member_id, group_id, "rotation")], None)
        with pytest.raises(CapacityConflict):
            store.append([_assigned_event(up, member_id, group_id, "queue")], None)
        # A person's choice (a claim, a transfer, a member named) is not refused.
        store.append([_assigned_event(up, member_id, group_id, "claim")], None)

        conversation = uuid.uuid4()
        closed = ConversationClosed(conversation_id=conversation, reason="agent", closed_at=up.now)
        closing = up.envelope(closed, str(conversation))
        route(store, recorder, closing, "conversations", 0)
        queued = ConversationQueued(
            conversation_id=conversation,
            workspace_id=up.workspace,
            group_id=group_id,
            rotation="available",
            claim_only=False,
            decision=Decision(rotation="available", rule="test", candidates=[], outcome="test"),
            queued_at=up.now,
            waiting_since=up.now,
            arrival=1,
        )
        with pytest.raises(ClosedMeanwhile):
            store.append([NewEvent(group_id, 1, up.envelope(queued, str(conversation)))], None)
        # The same record again (a redelivery, or published again at a new offset) changes
        # nothing: not the views, not the position, no nudge.
        stored = len(store.recorder.select_notifications(start=None, limit=10**6))
        route(store, recorder, closing, "conversations", 0)
        route(store, recorder, closing, "conversations", 1)
        assert store.position("conversations#0") == 2
        assert len(store.recorder.select_notifications(start=None, limit=10**6)) == stored
    finally:
        recorder.datastore.close()


async def test_members_leaving_capacity_raised_group_deleted_and_a_transfer(
    settings: Settings,
) -> None:
    """The router's nudges on the real broker: each change moves the conversations it must."""

    async def decided(count: int) -> list[Payload]:
        found = await eventually(
            lambda: stored_decisions(settings), lambda found: len(found) >= count, within=30
        )
        return [e.payload for e in found]

    def summary(payload: Payload) -> tuple[str, ...]:
        match payload:
            case ConversationAssigned():
                return ("assigned", up.names[payload.member_id], payload.via)
            case ConversationQueued():
                return ("queued", "workspace" if payload.group_id is None else "group")
            case ConversationReleased():
                return ("released", payload.reason)
            case _:
                return (type(payload).__name__,)

    async with upstream_of(settings) as up, assignment_running(settings):
        a, b, c = [await up.member(name, capacity=1) for name in "ABC"]
        d = await up.member("D", capacity=1, status="offline")
        ventas = await up.group("Ventas", a, b, c)
        cobros = await up.group("Cobros", d)
        first, second = await up.hand_off(ventas), await up.hand_off(ventas)
        await decided(2)
        await up.directory(MemberDeactivated(workspace_id=up.workspace, member_id=a))
        await decided(4)
        await up.directory(
            GroupMemberRemoved(workspace_id=up.workspace, group_id=ventas, member_id=b)
        )
        await decided(6)
        await up.directory(
            MemberUpdated(
                workspace_id=up.workspace, member_id=c, name="C", role="agent", capacity=2
            )
        )
        await decided(7)
        third = await up.hand_off(ventas)
        await decided(8)
        await up.directory(GroupDeleted(workspace_id=up.workspace, group_id=ventas))
        await decided(10)
        transfer = TransferConversation(
            conversation_id=first,
            workspace_id=up.workspace,
            to_member_id=None,
            to_group_id=cobros,
            requested_by=c,
            note="billing question",
        )
        await up.publish(HAND_OFF_REQUESTS_TOPIC, transfer, group_key(up.workspace, ventas))
        await decided(13)
        await up.status(d, "available")
        decisions = await decided(14)
        await asyncio.sleep(0.5)
        assert len(await stored_decisions(settings)) == 14

    assert [(getattr(p, "conversation_id", None), summary(p)) for p in decisions] == [
        (first, ("assigned", "A", "rotation")),
        (second, ("assigned", "B", "rotation")),
        (first, ("released", "member_deactivated")),
        (first, ("assigned", "C", "rotation")),
        (second, ("released", "removed_from_group")),
        (second, ("queued", "group")),  # A deactivated, B gone, C at capacity
        (second, ("assigned", "C", "queue")),  # C's capacity raised to 2
        (third, ("queued", "group")),
        (third, ("released", "group_deleted")),
        (third, ("queued", "workspace")),
        (first, ("released", "transferred")),
        (first, ("ConversationTransferred",)),
        (first, ("queued", "group")),  # D is offline
        (first, ("assigned", "D", "queue")),
    ]
