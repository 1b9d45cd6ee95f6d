"""The service metrics fold: a scripted day gives exact figures, in any order of arrival."""

from __future__ import annotations

import random
import uuid
from dataclasses import asdict
from datetime import date
from typing import Any

import pytest

from events.directory import WorkspaceCreated
from events.envelope import Envelope
from projections.metrics.fold import (
    ConversationFacts,
    Figures,
    RowKey,
    apply,
    contributions,
    conversation_of,
    difference,
    no_facts,
    total,
)
from tests.metrics_day import DAY, TIME_ZONE, Day, at

pytestmark = pytest.mark.unit


def fold_day(envelopes: list[Envelope], time_zone: str) -> dict[RowKey, Figures]:
    """What the writer does, without a database: fold each conversation, sum the rows
    by adding each event's difference (so a wrong difference shows as a wrong total)."""
    facts: dict[uuid.UUID, ConversationFacts] = {}
    rows: dict[RowKey, Figures] = {}
    for envelope in envelopes:
        conversation = conversation_of(envelope)
        if conversation is None:
            continue
        before = facts.get(conversation, no_facts(conversation))
        after = apply(before, envelope)
        facts[conversation] = after
        for key, change in difference(
            contributions(before, time_zone), contributions(after, time_zone)
        ).items():
            rows[key] = rows.get(key, Figures()) + change
    return {key: figures for key, figures in rows.items() if not figures.is_zero()}


def as_expected(rows: dict[RowKey, Figures]) -> dict[tuple[date, str, str], dict[str, Any]]:
    return {
        (key.day, key.group, key.member): {
            name: value for name, value in asdict(figures).items() if value != 0
        }
        for key, figures in rows.items()
    }


def test_the_scripted_day_gives_exact_figures_per_group_agent_and_local_day() -> None:
    day = Day()
    rows = fold_day([e.envelope for e in day.events], TIME_ZONE)
    assert as_expected(rows) == day.expected()
    assert {key.workspace_id for key in rows} == {day.workspace}


@pytest.mark.parametrize("seed", range(25))
def test_any_order_of_arrival_gives_the_same_figures(seed: int) -> None:
    """Five topics, consumed partition by partition: a close may come before the assignment,
    a reply before the hand-off."""
    day = Day()
    envelopes = [e.envelope for e in day.events]
    random.Random(seed).shuffle(envelopes)
    assert as_expected(fold_day(envelopes, TIME_ZONE)) == day.expected()


def test_days_follow_the_workspace_time_zone() -> None:
    """In UTC, C2's expiry (04:30 UTC on 3 March) falls on 3 March, not on 2 March."""
    day = Day()
    rows = as_expected(fold_day([e.envelope for e in day.events], "UTC"))
    ventas_beto = (DAY, str(day.ventas), str(day.beto))
    assert "expired" not in rows[ventas_beto]
    assert rows[(date(2027, 3, 3), str(day.ventas), str(day.beto))] == {
        "resolutions": 1,
        "resolution_seconds": 45000.0,
        "expired": 1,
    }


def test_the_same_event_folded_twice_counts_messages_twice_so_the_runtime_must_dedup() -> None:
    """Counting is not idempotent by itself (two messages at one minute are two): the runtime's
    handled ids keep a re-published record out; a first-of fact is idempotent on its own."""
    day = Day()
    message = next(e.envelope for e in day.events if e.envelope.event_type.endswith("received"))
    conversation = conversation_of(message)
    assert conversation is not None
    once = apply(no_facts(conversation), message)
    assert sum(n for _, n in apply(once, message).messages_in) == 2
    hand_off = next(e.envelope for e in day.events if e.envelope.event_type.endswith("requested"))
    handed = apply(no_facts(conversation), hand_off)
    assert apply(handed, hand_off) == handed


def test_the_first_hand_off_and_the_first_assignment_count_whatever_came_first() -> None:
    day = Day()
    conversation = day.c1
    first = next(
        e.envelope
        for e in day.events
        if conversation_of(e.envelope) == conversation
        and e.envelope.event_type.endswith("assigned")
    )
    later_payload = first.payload.model_copy(update={"member_id": day.beto, "assigned_at": at(16)})
    later = first.model_copy(update={"payload": later_payload, "event_id": uuid.uuid4()})
    one_way = apply(apply(no_facts(conversation), later), first)
    other_way = apply(apply(no_facts(conversation), first), later)
    assert one_way == other_way
    assert one_way.member_id == day.ana
    assert one_way.first_assigned_at == at(15, 4)


def test_a_conversation_without_a_known_workspace_counts_nowhere_yet() -> None:
    facts = ConversationFacts(
        conversation_id=uuid.uuid4(), closed_at=at(12), close_reason="expired"
    )
    assert contributions(facts, "UTC") == {}


def test_a_reply_before_the_assignment_is_a_response_in_no_time() -> None:
    facts = ConversationFacts(
        conversation_id=uuid.uuid4(),
        workspace_id=uuid.uuid4(),
        handed_off_at=at(10),
        first_assigned_at=at(10, 5),
        member_id=uuid.uuid4(),
        first_reply_at=at(10, 1),
    )
    rows = total([contributions(facts, "UTC")])
    assert sum(f.first_responses for f in rows.values()) == 1
    assert sum(f.first_response_seconds for f in rows.values()) == 0.0


def test_events_the_metrics_do_not_read_change_nothing() -> None:
    day = Day()
    created = next(
        e.envelope for e in day.events if isinstance(e.envelope.payload, WorkspaceCreated)
    )
    assert conversation_of(created) is None
    facts = no_facts(uuid.uuid4())
    assert apply(facts, created).model_copy(update={"workspace_id": None}) == facts


def test_facts_survive_their_json_form() -> None:
    day = Day()
    facts = no_facts(day.c1)
    for event in day.events:
        if conversation_of(event.envelope) == day.c1:
            facts = apply(facts, event.envelope)
    assert ConversationFacts.model_validate_json(facts.model_dump_json()) == facts


def test_of_two_closes_the_first_counts_whichever_arrives_first() -> None:
    """A close the expiry timer sent while an agent's close was on its way: one close, the
    earlier, with its reason."""
    day = Day()
    agent_close = next(
        e.envelope
        for e in day.events
        if conversation_of(e.envelope) == day.c1 and e.envelope.event_type == "conversation.closed"
    )
    expired_payload = agent_close.payload.model_copy(
        update={"reason": "expired", "closed_at": at(16)}
    )
    expired = agent_close.model_copy(update={"payload": expired_payload, "event_id": uuid.uuid4()})
    for order in ((agent_close, expired), (expired, agent_close)):
        facts = no_facts(day.c1)
        for envelope in order:
            facts = apply(facts, envelope)
        assert (facts.close_reason, facts.closed_at) == ("agent", at(15, 20))
