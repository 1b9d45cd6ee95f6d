"""The inbox's pure folds: read markers, deadlines, last assignments and flow-step lines."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID

import pytest

from events.assignment import ConversationAssigned, Decision
from events.base import Payload
from events.conversation import CustomerMessageReceived
from events.envelope import Actor, Envelope
from events.expiry import DeadlineSet
from events.flows import (
    AnswerCaptured,
    AnswerRejected,
    ConditionEvaluated,
    FlowEnded,
    FlowRunStarted,
)
from events.outbound import OutboundMessageQueued
from events.reads import ConversationRead, read_event_id
from projections.conversations import history_entry
from projections.inbox import (
    SEQ_FLOW_STEP,
    DeadlineRow,
    LastAssignment,
    ReadMarker,
    deadline_row,
    flow_step_entry,
    last_assignment,
    later_marker,
    read_marker,
)

pytestmark = pytest.mark.unit
CONVERSATION = UUID(int=10)
WORKSPACE = UUID(int=1)
MEMBER = UUID(int=7)
AT = datetime(2026, 11, 24, 12, tzinfo=UTC)


def wrapped(payload: Payload, n: int) -> Envelope:
    return Envelope.wrap(
        payload,
        event_id=UUID(int=n),
        stream_id=str(CONVERSATION),
        workspace_id=WORKSPACE,
        occurred_at=AT,
        correlation_id=UUID(int=n),
        causation_id=None,
        actor=Actor(kind="member", id=str(MEMBER)),
    )


def read(up_to: int, at: datetime = AT) -> Envelope:
    payload = ConversationRead(
        conversation_id=CONVERSATION, member_id=MEMBER, up_to=up_to, read_at=at
    )
    return wrapped(payload, 100 + up_to)


def test_a_read_marker_names_the_member_and_how_far_it_read() -> None:
    assert read_marker(read(3)) == ReadMarker(CONVERSATION, MEMBER, WORKSPACE, 3, AT)


def test_the_furthest_marker_wins_whatever_order_they_arrive_in() -> None:
    early = read_marker(read(2))
    late = read_marker(read(5, AT + timedelta(minutes=1)))
    assert early is not None
    assert late is not None
    assert later_marker(None, early) == early
    assert later_marker(early, late) == late
    assert later_marker(late, early) == late  # a marker read late changes nothing
    assert later_marker(late, late) == late


def test_reading_the_same_messages_twice_is_one_fact() -> None:
    first = read_event_id(WORKSPACE, CONVERSATION, MEMBER, 4)
    assert first == read_event_id(WORKSPACE, CONVERSATION, MEMBER, 4)
    assert first != read_event_id(WORKSPACE, CONVERSATION, MEMBER, 5)
    assert first != read_event_id(WORKSPACE, CONVERSATION, UUID(int=8), 4)
    assert first != read_event_id(UUID(int=2), CONVERSATION, MEMBER, 4)


def test_a_deadline_is_the_expiry_services_latest_word() -> None:
    flow_deadline = AT + timedelta(minutes=30)
    event = DeadlineSet(
        conversation_id=CONVERSATION,
        workspace_id=WORKSPACE,
        phone_number_id="1",
        contact_wa_id="57",
        deadline=flow_deadline,
        latest=AT + timedelta(hours=24),
        cause="flow",
    )
    assert deadline_row(wrapped(event, 1)) == DeadlineRow(CONVERSATION, flow_deadline, "flow")
    assert deadline_row(read(1)) is None


def test_an_assignment_in_a_group_is_the_members_last_turn_there() -> None:
    group = UUID(int=3)
    decision = Decision(rotation="available", rule="r", candidates=[], outcome="o")
    assigned = ConversationAssigned(
        conversation_id=CONVERSATION,
        workspace_id=WORKSPACE,
        group_id=group,
        member_id=MEMBER,
        member_name="Ana",
        via="rotation",
        decision=decision,
        assigned_at=AT,
    )
    assert last_assignment(wrapped(assigned, 1)) == LastAssignment(group, MEMBER, AT)
    # The workspace queue is no group: no roster shows it.
    unqueued = assigned.model_copy(update={"group_id": None})
    assert last_assignment(wrapped(unqueued, 2)) is None


def test_flow_steps_say_what_was_captured_and_which_branch_was_taken_and_why() -> None:
    captured = flow_step_entry(
        wrapped(
            AnswerCaptured(
                conversation_id=CONVERSATION,
                block_id="ask",
                variable="topic",
                value="billing",
                title="Facturación",
                captured_at=AT,
            ),
            1,
        )
    )
    assert captured is not None
    assert captured.kind == "flow"
    assert captured.text == "Answer to 'ask' captured: topic = Facturación (billing)."
    assert captured.content == {
        "step": "answer_captured",
        "block_id": "ask",
        "variable": "topic",
        "value": "billing",
        "title": "Facturación",
    }
    branch = flow_step_entry(
        wrapped(
            ConditionEvaluated(
                conversation_id=CONVERSATION,
                block_id="route",
                rule=None,
                next_block="after_hours",
                reason="no rule held (rule 1: time 19:00 not in 08:00-18:00): default branch",
                evaluated_at=AT,
            ),
            2,
        )
    )
    assert branch is not None
    assert branch.text == (
        "Branch at 'route': to 'after_hours' — no rule held (rule 1: time 19:00 not in"
        " 08:00-18:00): default branch."
    )
    rejected = flow_step_entry(
        wrapped(
            AnswerRejected(
                conversation_id=CONVERSATION,
                block_id="ask",
                answer="quizás",
                attempt=1,
                reason="expected one of 'Sí', 'No', got 'quizás'",
                rejected_at=AT,
            ),
            3,
        )
    )
    assert rejected is not None
    assert "attempt 1" in (rejected.text or "")


def test_flow_steps_sort_after_the_customers_message_and_before_the_bots_reply() -> None:
    """All of one step shares the customer's instant: (occurred_at, rank, seq) orders them."""
    message = CustomerMessageReceived(
        conversation_id=CONVERSATION,
        wamid="w.1",
        sequence=2,
        kind="text",
        text="Facturación",
        reply_id=None,
        content={"body": "Facturación"},
        context_wamid=None,
        sent_at=AT,
    )
    reply = OutboundMessageQueued(
        message_id=UUID(int=50),
        conversation_id=CONVERSATION,
        sequence=3,
        phone_number_id="1",
        to="57",
        kind="text",
        text="Te comunico con un asesor",
        options=[],
        list_button=None,
        template=None,
        author="bot",
        author_id=None,
        queued_at=AT,
    )
    captured = AnswerCaptured(
        conversation_id=CONVERSATION,
        block_id="ask",
        variable="topic",
        value="billing",
        title="Facturación",
        captured_at=AT,
    )
    branch = ConditionEvaluated(
        conversation_id=CONVERSATION,
        block_id="route",
        rule=0,
        next_block="agent",
        reason="rule 1 held",
        evaluated_at=AT,
    )
    lines = [
        history_entry(wrapped(reply, 4), None),
        flow_step_entry(wrapped(branch, 3)),
        history_entry(wrapped(message, 1), None),
        flow_step_entry(wrapped(captured, 2)),
    ]
    ordered = sorted(
        (line for line in lines if line is not None),
        key=lambda line: (line.occurred_at, line.rank, line.seq, line.event_id),
    )
    assert [line.text for line in ordered] == [
        "Facturación",
        "Answer to 'ask' captured: topic = Facturación (billing).",
        "Branch at 'route': to 'agent' — rule 1 held.",
        "Te comunico con un asesor",
    ]


def test_the_run_start_follows_the_first_message_and_the_end_says_where() -> None:
    def run(flow_id: UUID | None) -> Envelope:
        return wrapped(
            FlowRunStarted(
                conversation_id=CONVERSATION,
                flow_id=flow_id,
                version=2 if flow_id else None,
                phone_number_id="1",
                contact_wa_id="57",
                contact_name=None,
                time_zone="UTC",
                conversation_started_at=AT,
                agent_conversations=True,
            ),
            1,
        )

    started = flow_step_entry(run(UUID(int=9)))
    assert started is not None
    assert (started.rank, started.text) == (0, "Flow version 2 started.")
    assert 2 < started.seq < SEQ_FLOW_STEP  # after the customer's messages of that instant
    assert started.content == {"step": "started", "flow_id": str(UUID(int=9)), "version": 2}
    assert flow_step_entry(run(None)) is None  # the hand-off line says there is no flow
    ended = flow_step_entry(
        wrapped(FlowEnded(conversation_id=CONVERSATION, block_id="bye", ended_at=AT), 2)
    )
    assert ended is not None
    assert ended.text == "Flow ended at 'bye'."
    assert flow_step_entry(read(1)) is None
