"""Which stored events make a conversation's timeline, in what order, and how each reads."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID

import orjson
import pytest

from events.assignment import (
    Candidate,
    ConversationAssigned,
    Decision,
    GroupNudged,
    TransferConversation,
)
from events.base import Payload
from events.catalogue import build_registry
from events.codec import decode
from events.conversation import ConversationClosed, ConversationStarted, CustomerMessageReceived
from events.directory import GroupCreated
from events.envelope import Actor, Envelope
from events.flows import ConditionEvaluated, HandOffRequested
from events.operations import RecordDeadLettered
from events.reads import ConversationRead
from services.operations.describe import json_line, line, say, short
from services.operations.timeline import (
    StoredEntry,
    belongs_to,
    causal_depths,
    timeline,
    unstored,
)

pytestmark = pytest.mark.unit

CONVERSATION = UUID(int=7)
OTHER = UUID(int=8)
WORKSPACE = UUID(int=1)
GROUP = UUID(int=3)
MEMBER = UUID(int=4)
AT = datetime(2027, 3, 1, 9, 0, tzinfo=UTC)


def envelope(
    payload: Payload,
    number: int,
    *,
    stream: str = str(CONVERSATION),
    at: datetime = AT,
    cause: int | None = None,
) -> Envelope:
    return Envelope.wrap(
        payload,
        event_id=UUID(int=1000 + number),
        stream_id=stream,
        workspace_id=WORKSPACE,
        occurred_at=at,
        correlation_id=UUID(int=999),
        causation_id=None if cause is None else UUID(int=1000 + cause),
        actor=Actor(kind="system"),
    )


def started(conversation: UUID = CONVERSATION) -> ConversationStarted:
    return ConversationStarted(
        conversation_id=conversation,
        phone_number_id="480112093385611",
        display_phone_number="573001112233",
        contact_wa_id="573001234567",
        contact_name="Valentina",
        started_at=AT,
        received_at=AT,
    )


def message(sequence: int, text: str) -> CustomerMessageReceived:
    return CustomerMessageReceived(
        conversation_id=CONVERSATION,
        wamid=f"wamid.{sequence}",
        sequence=sequence,
        kind="text",
        text=text,
        reply_id=None,
        content={"body": text},
        context_wamid=None,
        sent_at=AT,
        context=None,
        referral=None,
        group_id=None,
        errors=[],
        received_at=AT,
    )


def hand_off() -> HandOffRequested:
    return HandOffRequested(
        conversation_id=CONVERSATION,
        workspace_id=WORKSPACE,
        phone_number_id="480112093385611",
        contact_wa_id="573001234567",
        group_id=GROUP,
        rotation="available",
        member_id=None,
        reason="flow block 'agent'",
        requested_at=AT,
    )


def assigned() -> ConversationAssigned:
    candidates = [
        Candidate(
            member_id=MEMBER,
            name="Ana",
            status="available",
            active=True,
            load=0,
            capacity=5,
            last_assigned_at=None,
            skipped=None,
            chosen=True,
        ),
        Candidate(
            member_id=UUID(int=5),
            name="Beto",
            status="offline",
            active=True,
            load=1,
            capacity=3,
            last_assigned_at=None,
            skipped="status offline",
            chosen=False,
        ),
    ]
    return ConversationAssigned(
        conversation_id=CONVERSATION,
        workspace_id=WORKSPACE,
        group_id=GROUP,
        member_id=MEMBER,
        member_name="Ana",
        via="rotation",
        decision=Decision(
            rotation="available",
            rule="members available with room",
            candidates=candidates,
            outcome="assigned to Ana",
        ),
        assigned_at=AT,
    )


def entry(store: str, number: int, event: Envelope) -> StoredEntry:
    return StoredEntry(store=store, notification_id=number, envelope=event)


def test_an_event_belongs_by_its_stream_or_by_the_conversation_its_payload_names() -> None:
    assert belongs_to(envelope(started(), 1), CONVERSATION)
    # A hand-off request is keyed by its group but names the conversation.
    assert belongs_to(envelope(hand_off(), 2, stream=str(GROUP)), CONVERSATION)
    # A record keyed by the conversation that was parked: its dead letter is keyed alike.
    parked = RecordDeadLettered(
        consumer="flows",
        source_topic="conversation.events",
        source_partition=1,
        source_offset=4,
        key=str(CONVERSATION),
        value_base64="e30=",
        reason="boom",
    )
    assert belongs_to(envelope(parked, 3), CONVERSATION)
    # Another conversation, and an event that only mentions the id somewhere else, do not.
    assert not belongs_to(envelope(started(OTHER), 4, stream=str(OTHER)), CONVERSATION)
    group = GroupCreated(workspace_id=WORKSPACE, group_id=GROUP, name=str(CONVERSATION))
    assert not belongs_to(envelope(group, 5, stream=str(WORKSPACE)), CONVERSATION)
    nudge = GroupNudged(
        workspace_id=WORKSPACE,
        group_id=GROUP,
        cause="conversation_closed",
        member_id=MEMBER,
        conversation_id=None,
        detail="",
        nudged_at=AT,
    )
    assert not belongs_to(envelope(nudge, 6, stream=str(GROUP)), CONVERSATION)


def test_events_are_ordered_by_time_then_cause_before_effect_whatever_the_store() -> None:
    later = AT + timedelta(seconds=5)
    first = envelope(started(), 1)
    wrote = envelope(message(1, "hola"), 2, cause=1)
    # Caused by the message, stamped with its time, stored in a store named earlier.
    asked = envelope(hand_off(), 3, stream=str(GROUP), cause=2)
    decided = envelope(assigned(), 4, cause=3)
    closed = envelope(
        ConversationClosed(conversation_id=CONVERSATION, reason="agent", closed_at=later),
        5,
        at=later,
    )
    stranger = envelope(started(OTHER), 6, stream=str(OTHER))
    entries = [
        entry("inbound", 9, closed),
        entry("assignment", 2, decided),
        entry("flows", 1, asked),
        entry("inbound", 1, wrote),
        entry("inbound", 0, first),
        entry("inbound", 3, stranger),
        entry("projections", 1, first),  # the same event in a second store: shown once
    ]
    ordered = timeline(entries, CONVERSATION)
    assert [e.envelope.event_id for e in ordered] == [
        first.event_id,
        wrote.event_id,
        asked.event_id,
        decided.event_id,
        closed.event_id,
    ]
    assert ordered[0].store == "inbound"
    # The same input in any order gives the same timeline.
    assert timeline(list(reversed(entries)), CONVERSATION) == ordered


def test_unrelated_events_at_one_instant_keep_the_stores_order() -> None:
    a = envelope(message(1, "a"), 1)
    b = envelope(message(2, "b"), 2)
    c = envelope(hand_off(), 3, stream=str(GROUP))
    ordered = timeline(
        [entry("inbound", 5, b), entry("inbound", 4, a), entry("flows", 9, c)], CONVERSATION
    )
    assert [e.envelope.event_id for e in ordered] == [c.event_id, a.event_id, b.event_id]


def test_causal_depth_counts_known_causes_and_survives_a_cycle() -> None:
    root = envelope(message(1, "x"), 1, cause=99)  # its cause is not in the timeline
    child = envelope(message(2, "y"), 2, cause=1)
    grandchild = envelope(message(3, "z"), 3, cause=2)
    assert causal_depths([grandchild, root, child]) == {
        root.event_id: 0,
        child.event_id: 1,
        grandchild.event_id: 2,
    }
    loop_a = envelope(message(4, "p"), 4, cause=5)
    loop_b = envelope(message(5, "q"), 5, cause=4)
    depths = causal_depths([loop_a, loop_b])
    assert set(depths) == {loop_a.event_id, loop_b.event_id}


def test_lines_say_what_happened_and_why() -> None:
    branch = ConditionEvaluated(
        conversation_id=CONVERSATION,
        block_id="route",
        rule=None,
        next_block="to_sales",
        reason="no rule held: route='x'",
        evaluated_at=AT,
    )
    said = say(branch)
    assert said.what == "flow branched at route to to_sales (the default branch)"
    assert said.why == "no rule held: route='x'"
    decision = say(assigned())
    assert decision.what.startswith("assigned to Ana")
    assert decision.why == (
        "members available with room — assigned to Ana"
        " — skipped Beto (offline, 1/3): status offline"
    )
    text = line(entry("assignment", 4, envelope(assigned(), 4)))
    assert text.startswith("2027-03-01T09:00:00.000+00:00  assignment  assigned to Ana")
    assert "— why: members available with room" in text


def test_an_event_with_no_sentence_of_its_own_still_reads() -> None:
    group = GroupCreated(workspace_id=WORKSPACE, group_id=GROUP, name="Ventas")
    assert say(group).what.startswith("directory.group_created workspace_id=")
    assert "name=Ventas" in say(group).what


def test_text_is_kept_on_one_line_and_cut() -> None:
    assert short("a\nb\x00c") == "a b\\x00c"
    assert short("x" * 100) == "x" * 79 + "…"
    assert short(None) == ""


def test_a_json_line_is_the_envelope_with_its_place_and_words() -> None:
    event = envelope(message(1, "hola"), 1)
    document = orjson.loads(json_line(entry("inbound", 12, event)))
    assert document["store"] == "inbound"
    assert document["notification_id"] == 12
    assert document["summary"] == "customer wrote #1: hola"
    assert document["why"] is None
    envelope_fields = {k: v for k, v in document.items() if k in Envelope.model_fields}
    assert decode(orjson.dumps(envelope_fields), build_registry()) == event


def test_a_published_record_a_store_holds_is_shown_from_the_store() -> None:
    relayed = envelope(hand_off(), 3, stream=str(GROUP))
    reply = envelope(
        TransferConversation(
            conversation_id=CONVERSATION,
            workspace_id=WORKSPACE,
            to_member_id=MEMBER,
            to_group_id=None,
            requested_by=UUID(int=5),
            note="knows billing",
        ),
        4,
        stream=str(GROUP),
    )
    stored = [entry("flows", 1, relayed)]
    published = [
        entry("assignment.requests#2", 7, relayed),
        entry("assignment.requests#2", 8, reply),
    ]
    assert unstored(stored, published) == [published[1]]
    said = say(reply.payload)
    assert said.what == f"member {UUID(int=5)} asked to transfer it to member {MEMBER}"
    assert said.why == "note: knows billing"
    read = ConversationRead(conversation_id=CONVERSATION, member_id=MEMBER, up_to=3, read_at=AT)
    assert say(read).what == f"member {MEMBER} read up to customer message #3"
