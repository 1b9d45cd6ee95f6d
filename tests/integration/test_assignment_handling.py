"""The assignment service's handlers through the batch runtime on PostgreSQL, without Kafka.

Records go through ``runtime.consumer.Consumer`` exactly as fetched ones do (positions,
handled event ids, one unit of work per batch). The handlers read and write the service's
SQL views through the unit of work's cursor (the in-memory store has none), so these tests
need the database.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from uuid import UUID

import pytest

from events.assignment import (
    AssignmentCommandRejected,
    ClaimConversation,
    ConversationAssigned,
    ConversationQueued,
    GroupNudged,
    group_key,
)
from events.base import Payload
from events.codec import decode
from events.directory import AgentStatusChanged, GroupCreated, GroupMemberAdded, MemberAdded
from events.envelope import Envelope
from runtime.consumer import Consumer
from runtime.postgres import open_recorder
from runtime.records import Delivery
from runtime.store import EventStore
from services.assignment.handlers import DeciderHandler, RouterHandler
from services.assignment.recorder import AssignmentRecorder
from services.settings import Settings
from tests.harness import REGISTRY
from tests.integration.test_assignment import Upstream
from tests.memory import Topic

pytestmark = pytest.mark.integration


class Assignment:
    """The assignment service's two consumers on its PostgreSQL store, fed by hand."""

    def __init__(self, settings: Settings, recorder: AssignmentRecorder) -> None:
        self.up = Upstream(settings, None)  # only its envelopes: nothing is published
        self.store = EventStore(recorder, REGISTRY)
        self.router = Consumer("assignment-router", REGISTRY)
        self.router.bind(self.store, RouterHandler(recorder))
        self.decider = Consumer("assignment", REGISTRY)
        self.decider.bind(self.store, DeciderHandler(recorder))
        self.directory = Topic("directory.events")
        self.requests = Topic("assignment.requests")
        self.names: dict[UUID, str] = {}

    def handle(self, consumer: Consumer, *deliveries: Delivery) -> None:
        consumer.commit_batch([consumer.received(delivery) for delivery in deliveries])

    def directory_event(self, payload: Payload) -> Delivery:
        return self.directory.record(self.up.envelope(payload, str(self.up.workspace)))

    def member(self, name: str, capacity: int = 3) -> UUID:
        member_id = uuid.uuid4()
        self.names[member_id] = name
        added = MemberAdded(
            workspace_id=self.up.workspace,
            member_id=member_id,
            name=name,
            role="agent",
            capacity=capacity,
        )
        available = AgentStatusChanged(
            workspace_id=self.up.workspace,
            member_id=member_id,
            status="available",
            previous="offline",
            reason="test",
        )
        self.handle(self.router, self.directory_event(added), self.directory_event(available))
        return member_id

    def group(self, *members: UUID) -> UUID:
        group_id = uuid.uuid4()
        created = GroupCreated(workspace_id=self.up.workspace, group_id=group_id, name="G")
        joined = [
            GroupMemberAdded(workspace_id=self.up.workspace, group_id=group_id, member_id=m)
            for m in members
        ]
        self.handle(self.router, *(self.directory_event(p) for p in (created, *joined)))
        return group_id

    def hand_off(self, group_id: UUID) -> Envelope:
        request = self.up.hand_off_request(group_id)
        return self.up.envelope(request, group_key(self.up.workspace, group_id))

    def decisions(self) -> list[Payload]:
        return [
            event.payload for event in self.stored() if not isinstance(event.payload, GroupNudged)
        ]

    def stored(self) -> list[Envelope]:
        return [
            decode(n.state, REGISTRY)
            for n in self.store.recorder.select_notifications(start=None, limit=10**6)
        ]


@pytest.fixture
def assignment(settings: Settings) -> Iterator[Assignment]:
    recorder = open_recorder(settings, "assignment", AssignmentRecorder)
    try:
        yield Assignment(settings, recorder)
    finally:
        recorder.datastore.close()


def assigned_to(service: Assignment) -> list[str]:
    return [
        service.names[p.member_id]
        for p in service.decisions()
        if isinstance(p, ConversationAssigned)
    ]


def test_a_batch_of_hand_offs_is_decided_in_rotation_each_seeing_the_earlier_decisions(
    assignment: Assignment,
) -> None:
    a, b = assignment.member("A", capacity=2), assignment.member("B", capacity=1)
    group = assignment.group(a, b)
    hand_offs = [assignment.hand_off(group) for _ in range(5)]
    assignment.handle(assignment.decider, *(assignment.requests.record(h) for h in hand_offs))
    # Turns alternate; B is full after one, A after two; the rest wait in the group's queue.
    assert assigned_to(assignment) == ["A", "B", "A"]
    queued = [p for p in assignment.decisions() if isinstance(p, ConversationQueued)]
    assert len(queued) == 2
    assert assignment.store.position("assignment.requests#0") == 5


def test_a_hand_off_published_again_at_a_new_offset_changes_nothing(
    assignment: Assignment,
) -> None:
    a, b = assignment.member("A"), assignment.member("B")
    group = assignment.group(a, b)
    first = assignment.hand_off(group)
    assignment.handle(assignment.decider, assignment.requests.record(first))
    before = assignment.stored()
    # The relay publishes it again after a crash: the same event id at later offsets, alone
    # and in a batch with a new hand-off (which takes the next turn, B's).
    assignment.handle(assignment.decider, assignment.requests.record(first))
    second = assignment.hand_off(group)
    assignment.handle(
        assignment.decider,
        assignment.requests.record(first),
        assignment.requests.record(second),
    )
    after = assignment.stored()
    assert after[: len(before)] == before
    assert assigned_to(assignment) == ["A", "B"]
    assert assignment.store.position("assignment.requests#0") == 4


def test_a_refused_claim_published_again_is_not_refused_twice(assignment: Assignment) -> None:
    a = assignment.member("A")
    group = assignment.group(a)
    stranger = uuid.uuid4()  # no member of this workspace
    claim = ClaimConversation(
        conversation_id=uuid.uuid4(), workspace_id=assignment.up.workspace, member_id=stranger
    )
    record = assignment.up.envelope(claim, group_key(assignment.up.workspace, group))
    assignment.handle(assignment.decider, assignment.requests.record(record))
    assignment.handle(assignment.decider, assignment.requests.record(record))
    rejected = [p for p in assignment.decisions() if isinstance(p, AssignmentCommandRejected)]
    assert len(rejected) == 1


def test_a_directory_event_published_again_nudges_no_group_twice(
    assignment: Assignment,
) -> None:
    full = assignment.member("Full", capacity=1)
    group = assignment.group(full)
    assignment.handle(
        assignment.decider,
        *(assignment.requests.record(assignment.hand_off(group)) for _ in range(2)),
    )  # one assigned, one waiting
    late = assignment.member("Late")
    added = GroupMemberAdded(workspace_id=assignment.up.workspace, group_id=group, member_id=late)
    event = assignment.up.envelope(added, str(assignment.up.workspace))
    joined = assignment.directory.record(event)
    assignment.handle(assignment.router, joined)
    nudges = [e.payload for e in assignment.stored() if isinstance(e.payload, GroupNudged)]
    assert [n.cause for n in nudges] == ["member_added_to_group"]
    stored = assignment.stored()
    # The same record again: at its own offset (a redelivery) and at a new one (the relay).
    assignment.handle(assignment.router, joined)
    assignment.handle(assignment.router, assignment.directory.record(event))
    assert assignment.stored() == stored
