"""Assignment decisions in the read models, on the real broker and database.

Only the projector runs: the test publishes the directory's, the conversations' and the
assignment service's events itself (as their relays would, keyed the same way), so it can
choose their order: a decision before its conversation starts, a transfer's release after
the new group's decision.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from psycopg_pool import AsyncConnectionPool

from events.assignment import (
    AssignmentCommandRejected,
    Candidate,
    ConversationAssigned,
    ConversationQueued,
    ConversationReleased,
    ConversationTransferred,
    Decision,
)
from events.base import Payload
from events.catalogue import (
    ASSIGNMENT_EVENTS_TOPIC,
    CONVERSATION_EVENTS_TOPIC,
    DIRECTORY_EVENTS_TOPIC,
    Topic,
)
from events.codec import encode
from events.conversation import ConversationClosed, ConversationStarted
from events.directory import (
    AgentStatusChanged,
    GroupCreated,
    GroupMemberAdded,
    MemberAdded,
    WorkspaceCreated,
)
from events.envelope import Actor, Envelope
from projections.app import create_app as create_projector
from projections.app import open_recorder
from projections.queries import ReadModels
from services.settings import Settings
from tests.harness import eventually, query

pytestmark = pytest.mark.integration
AT = datetime(2027, 3, 2, 15, 0, tzinfo=UTC)
WS = uuid.uuid4()
ANA, BETO = uuid.uuid4(), uuid.uuid4()
VENTAS, SOPORTE = uuid.uuid4(), uuid.uuid4()


class World:
    """Publishes events as the services' relays would, and reads the read models."""

    def __init__(self, settings: Settings, producer: AIOKafkaProducer, models: ReadModels):
        self.settings = settings
        self.producer = producer
        self.models = models
        self.count = 0

    async def publish(
        self, topic: Topic, key: uuid.UUID, payload: Payload, *, cause: uuid.UUID | None = None
    ) -> Envelope:
        self.count += 1
        envelope = Envelope.wrap(
            payload,
            event_id=uuid.uuid4(),
            stream_id=str(key),
            workspace_id=WS,
            occurred_at=AT + timedelta(seconds=self.count),
            correlation_id=uuid.uuid4(),
            causation_id=cause,
            actor=Actor(kind="system"),
        )
        await self.producer.send_and_wait(
            topic.qualified(self.settings.topic_prefix), encode(envelope), key=str(key).encode()
        )
        return envelope

    async def directory(self, payload: Payload) -> None:
        await self.publish(DIRECTORY_EVENTS_TOPIC, WS, payload)

    async def conversation(self, payload: Payload) -> None:
        conversation_id = getattr(payload, "conversation_id")  # noqa: B009
        await self.publish(CONVERSATION_EVENTS_TOPIC, conversation_id, payload)

    async def decision(self, payload: Payload, cause: uuid.UUID | None = None) -> Envelope:
        conversation_id = getattr(payload, "conversation_id")  # noqa: B009
        return await self.publish(ASSIGNMENT_EVENTS_TOPIC, conversation_id, payload, cause=cause)

    async def until(
        self, probe: Callable[[], Awaitable[Any]], accept: Callable[[Any], bool]
    ) -> Any:
        return await eventually(probe, accept)


def explained(outcome: str, rotation: str = "available") -> Decision:
    candidate = Candidate(
        member_id=BETO,
        name="Beto",
        status="unavailable",
        active=True,
        load=0,
        capacity=3,
        last_assigned_at=None,
        skipped="status unavailable",
        chosen=False,
    )
    return Decision(
        rotation=rotation,  # type: ignore[arg-type]
        rule="available members of the group, longest without a conversation first",
        candidates=[candidate],
        outcome=outcome,
    )


async def assignment_lines(models: ReadModels, conversation: uuid.UUID) -> list[dict[str, Any]]:
    return [line for line in await models.history(conversation) if line["kind"] == "assignment"]


def started(conversation_id: uuid.UUID, contact: str, minute: int) -> ConversationStarted:
    return ConversationStarted(
        conversation_id=conversation_id,
        phone_number_id="4801",
        display_phone_number="57300",
        contact_wa_id=contact,
        contact_name=f"Customer {contact}",
        started_at=AT + timedelta(minutes=minute),
    )


def queued(conversation_id: uuid.UUID, group: uuid.UUID | None, minute: int) -> ConversationQueued:
    return ConversationQueued(
        conversation_id=conversation_id,
        workspace_id=WS,
        group_id=group,
        rotation="available",
        claim_only=False,
        decision=explained("nobody available: queued"),
        queued_at=AT + timedelta(minutes=minute),
        waiting_since=AT + timedelta(minutes=minute),
        arrival=None,
    )


def assigned(
    conversation_id: uuid.UUID, group: uuid.UUID, member: uuid.UUID, via: str, minute: int
) -> ConversationAssigned:
    return ConversationAssigned(
        conversation_id=conversation_id,
        workspace_id=WS,
        group_id=group,
        member_id=member,
        member_name="Ana" if member == ANA else "Beto",
        via=via,  # type: ignore[arg-type]
        decision=explained(f"assigned ({via})", "claim" if via == "claim" else "available"),
        assigned_at=AT + timedelta(minutes=minute),
    )


@pytest.fixture
async def world(settings: Settings) -> AsyncIterator[World]:
    app = create_projector(settings)
    async with app.lifespan_context():
        await app.start()
        producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
        await producer.start()
        pool = AsyncConnectionPool(
            settings.database().conninfo(), min_size=1, max_size=2, open=False
        )
        try:
            await pool.open()
            world = World(settings, producer, ReadModels(pool, settings.schema("projections")))
            await world.directory(WorkspaceCreated(workspace_id=WS, name="Acme", time_zone="UTC"))
            for member, name, role in ((ANA, "Ana", "admin"), (BETO, "Beto", "agent")):
                await world.directory(
                    MemberAdded(
                        workspace_id=WS,
                        member_id=member,
                        name=name,
                        role=role,  # type: ignore[arg-type]
                        capacity=3,
                    )
                )
            for group, name in ((VENTAS, "Ventas"), (SOPORTE, "Soporte")):
                await world.directory(GroupCreated(workspace_id=WS, group_id=group, name=name))
            for group, member in ((VENTAS, ANA), (VENTAS, BETO), (SOPORTE, BETO)):
                await world.directory(
                    GroupMemberAdded(workspace_id=WS, group_id=group, member_id=member)
                )
            # The directory is projected before the tests begin (they read names from it).
            await world.until(
                lambda: world.models.group(WS, SOPORTE),
                lambda found: found is not None and found["member_ids"] == [BETO],
            )
            yield world
        finally:
            await pool.close()
            await producer.stop()
            await app.stop()


async def test_queue_claim_transfer_and_close(world: World) -> None:
    models = world.models
    first = uuid.uuid4()

    # The decision arrives before the conversation starts (another topic).
    await world.decision(queued(first, VENTAS, 1))
    row = await world.until(lambda: models.assignment(WS, first), lambda r: r is not None)
    assert (row["state"], row["group_id"], row["assignee_id"]) == ("queued", VENTAS, None)
    assert await models.queue(WS, VENTAS) == []  # no conversation row yet
    await world.conversation(started(first, "5731", 0))
    [waiting] = await world.until(lambda: models.queue(WS, VENTAS), lambda q: len(q) == 1)
    assert (waiting["conversation_id"], waiting["contact_name"]) == (first, "Customer 5731")
    assert waiting["queued_at"] == AT + timedelta(minutes=1)
    inbox = await models.inbox(WS, BETO)
    assert [(c["conversation_id"], c["group_name"]) for c in inbox["queued"]] == [(first, "Ventas")]
    assert inbox["assigned"] == []

    # Ana claims it.
    claim = uuid.uuid4()
    await world.decision(assigned(first, VENTAS, ANA, "claim", 2), cause=claim)
    verdict = await world.until(lambda: models.command_outcome(claim), lambda o: o is not None)
    assert (verdict["outcome"], verdict["command_type"]) == (
        "accepted",
        "assignment.claim_conversation",
    )
    assert verdict["result"] == {
        "conversation_id": str(first),
        "member_id": str(ANA),
        "group_id": str(VENTAS),
    }
    assert await models.queue(WS, VENTAS) == []
    [mine] = (await models.inbox(WS, ANA))["assigned"]
    assert (mine["assignee_id"], mine["assignment_state"], mine["queued_at"]) == (
        ANA,
        "assigned",
        AT + timedelta(minutes=1),
    )
    conversation = await models.conversation(WS, first)
    assert conversation is not None
    assert (conversation["group_id"], conversation["assignee_id"]) == (VENTAS, ANA)
    roster = {m["member_id"]: m for m in await models.roster(WS, VENTAS)}
    assert (roster[ANA]["load"], roster[BETO]["load"]) == (1, 0)
    assert [m["member_id"] for m in await models.roster(WS, VENTAS)] == [ANA, BETO]

    # Beto's late claim lost.
    late = uuid.uuid4()
    await world.decision(
        AssignmentCommandRejected(
            command_id=late,
            command_type="assignment.claim_conversation",
            conversation_id=first,
            workspace_id=WS,
            member_id=BETO,
            reason="already assigned to Ana",
            conflict=True,
        )
    )
    refused = await world.until(lambda: models.command_outcome(late), lambda o: o is not None)
    assert (refused["outcome"], refused["reason"], refused["result"]) == (
        "rejected",
        "already assigned to Ana",
        {"conflict": True},
    )

    # Ana transfers it to Soporte; the old group's release is projected last.
    transfer = uuid.uuid4()
    await world.decision(
        ConversationTransferred(
            conversation_id=first,
            workspace_id=WS,
            from_group_id=VENTAS,
            from_member_id=ANA,
            to_group_id=SOPORTE,
            to_member_id=None,
            requested_by=ANA,
            note="billing question",
            transferred_at=AT + timedelta(minutes=3),
        ),
        cause=transfer,
    )
    await world.decision(assigned(first, SOPORTE, BETO, "rotation", 3), cause=transfer)
    await world.decision(
        ConversationReleased(
            conversation_id=first,
            workspace_id=WS,
            group_id=VENTAS,
            member_id=ANA,
            reason="transferred",
            released_at=AT + timedelta(minutes=3),
        ),
        cause=transfer,
    )
    verdict = await world.until(lambda: models.command_outcome(transfer), lambda o: o is not None)
    assert verdict["result"] == {"conversation_id": str(first), "group_id": str(SOPORTE)}
    lines = await world.until(
        lambda: assignment_lines(models, first),
        lambda found: len(found) == 5,
    )
    # As the history API shows them: groups and members by name.
    assert [line["text"] for line in lines] == [
        "nobody available: queued",
        "assigned (claim)",
        "Released from member Ana: it was transferred.",
        "Transferred to group Soporte by Ana: billing question.",
        "assigned (rotation)",
    ]
    assert lines[0]["content"]["candidates"][0]["skipped"] == "status unavailable"
    row = await models.assignment(WS, first)
    assert row is not None
    assert (row["state"], row["group_id"], row["assignee_id"]) == ("assigned", SOPORTE, BETO)
    assert (await models.inbox(WS, ANA))["assigned"] == []
    [held] = (await models.inbox(WS, BETO))["assigned"]
    assert (held["conversation_id"], held["group_name"]) == (first, "Soporte")

    # Closed: out of every inbox and every load.
    await world.conversation(
        ConversationClosed(conversation_id=first, reason="agent", closed_at=AT + timedelta(hours=1))
    )
    await world.until(lambda: models.inbox(WS, BETO), lambda found: found["assigned"] == [])
    assert [m["load"] for m in await models.roster(WS, SOPORTE)] == [0]

    # What agents saw change, in order, with whose screens each concerns.
    changes = await models.changes_since(WS, 0, 100)
    kinds = [(c["kind"], c["group_id"], c["member_id"]) for c in changes if c["conversation_id"]]
    assert kinds == [
        ("assignment.conversation_queued", VENTAS, None),
        ("conversation.started", VENTAS, None),
        ("assignment.conversation_assigned", VENTAS, ANA),
        ("assignment.conversation_transferred", SOPORTE, ANA),
        ("assignment.conversation_assigned", SOPORTE, BETO),
        ("assignment.conversation_released", VENTAS, ANA),
        ("conversation.closed", SOPORTE, BETO),
    ]
    assert [c["seq"] for c in changes] == sorted(c["seq"] for c in changes)
    assert await models.last_change_seq(WS) == changes[-1]["seq"]


async def test_the_workspace_queue_and_a_released_queue_entry(world: World) -> None:
    models = world.models
    waiting, moved = uuid.uuid4(), uuid.uuid4()
    await world.conversation(started(waiting, "5732", 0))
    await world.conversation(started(moved, "5733", 0))
    await world.decision(queued(waiting, None, 5))
    await world.decision(queued(moved, VENTAS, 2))
    # Ventas is deleted: its queue entry goes to the workspace's queue, longest-waiting first.
    await world.decision(
        ConversationReleased(
            conversation_id=moved,
            workspace_id=WS,
            group_id=VENTAS,
            member_id=None,
            reason="group_deleted",
            released_at=AT + timedelta(minutes=6),
        )
    )
    # Queued in the workspace queue at the deletion (minute 6), waiting since minute 0.
    await world.decision(queued(moved, None, 6).model_copy(update={"waiting_since": AT}))
    found = await world.until(lambda: models.queue(WS, None), lambda q: len(q) == 2)
    assert [entry["conversation_id"] for entry in found] == [moved, waiting]
    assert found[0]["queued_at"] == AT
    lines = await world.until(
        lambda: assignment_lines(models, moved), lambda found: len(found) == 3
    )
    assert [(line["text"], line["occurred_at"]) for line in lines[1:]] == [
        (
            "Released from the queue of group Ventas: the group was deleted.",
            AT + timedelta(minutes=6),
        ),
        ("nobody available: queued", AT + timedelta(minutes=6)),
    ]
    assert await models.queue(WS, VENTAS) == []
    # The workspace queue belongs to no group: no member's inbox lists it.
    assert (await models.inbox(WS, BETO))["queued"] == []
    [mine] = await models.conversations_of_contact(WS, "5733")
    assert (mine["assignment_state"], mine["group_id"]) == ("queued", None)


async def test_a_queue_lists_conversations_waiting_since_one_second_by_arrival(
    world: World,
) -> None:
    """The assignment service serves a queue by waiting time, then arrival; the list must
    show that order, not the order of the conversations' ids."""
    models = world.models
    by_id = sorted(uuid.uuid4() for _ in range(4))
    arriving = [by_id[2], by_id[0], by_id[3], by_id[1]]
    for n, conversation in enumerate(arriving):
        await world.conversation(started(conversation, f"574{n}", 0))
        await world.decision(queued(conversation, SOPORTE, 1).model_copy(update={"arrival": n + 1}))
    found = await world.until(lambda: models.queue(WS, SOPORTE), lambda q: len(q) == 4)
    assert [entry["conversation_id"] for entry in found] == arriving
    inbox = await models.inbox(WS, BETO)
    assert [entry["conversation_id"] for entry in inbox["queued"]] == arriving


async def test_a_rebuild_from_offset_zero_yields_the_same_rows(
    world: World, settings: Settings
) -> None:
    conversation = uuid.uuid4()
    await world.conversation(started(conversation, "5734", 0))
    await world.decision(queued(conversation, VENTAS, 1))
    await world.decision(assigned(conversation, VENTAS, BETO, "claim", 2), cause=uuid.uuid4())
    await world.directory(
        AgentStatusChanged(
            workspace_id=WS, member_id=BETO, status="available", previous="offline", reason="x"
        )
    )
    tables = (
        "members",
        "groups",
        "group_members",
        "conversations",
        "conversation_history",
        "conversation_assignments",
        "command_outcomes",
    )

    async def snapshot() -> dict[str, list[dict[str, Any]]]:
        return {
            table: sorted(
                await query(settings, "projections", f"SELECT * FROM {{s}}.{table}"), key=repr
            )
            for table in tables
        }

    await world.until(
        lambda: world.models.member(WS, BETO),
        lambda m: m is not None and m["status"] == "available",
    )
    await world.until(
        lambda: world.models.assignment(WS, conversation),
        lambda row: row is not None and row["state"] == "assigned",
    )
    before = await snapshot()
    assert before["conversation_history"]
    recorder = open_recorder(settings)
    try:
        recorder.rebuild()
    finally:
        recorder.datastore.close()
    # Another projector joins the consumer group: on the rebalance both find no positions
    # and replay their partitions from offset zero.
    app = create_projector(settings)
    async with app.lifespan_context():
        await app.start()
        try:
            await eventually(snapshot, lambda after: after == before, within=60)
        finally:
            await app.stop()
