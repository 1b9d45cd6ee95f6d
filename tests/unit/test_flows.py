"""Flow definitions (validation) and flow runs (given events, when a message, then events)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import reduce
from typing import Any
from uuid import UUID

import orjson
import pytest

from events.base import Payload
from events.catalogue import build_registry
from events.codec import decode
from events.conversation import CloseConversation, ConversationStarted, CustomerMessageReceived
from events.flow_language.grammar import FlowDefinition, FlowInvalid, parse_flow
from events.flows import (
    AnswerCaptured,
    AnswerRejected,
    ConditionEvaluated,
    ExpirationRequested,
    FlowEnded,
    FlowFailed,
    FlowPublished,
    FlowRunStarted,
    HandOffRequested,
    QuestionAsked,
    upcast_flow_definition_v1,
)
from events.outbound import OutboundMessageQueued
from services.flows.decide import (
    ActiveFlow,
    RunState,
    arrival,
    decide,
    decide_start,
    evolve,
    start,
)
from tests.flow_samples import support_flow

pytestmark = pytest.mark.unit
GROUP = UUID(int=77)
WORKSPACE = UUID(int=1)
CONVERSATION = UUID(int=5)
# Tuesday 2026-11-24, 10:00 in Bogotá (UTC-5, no daylight saving).
OFFICE_HOURS = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)
EVENING = datetime(2026, 11, 24, 23, 30, tzinfo=UTC)  # 18:30 in Bogotá


def message(
    at: datetime, text: str | None = None, reply_id: str | None = None, n: int = 0
) -> CustomerMessageReceived:
    return CustomerMessageReceived(
        conversation_id=CONVERSATION,
        wamid=f"w{n}-{at.timestamp()}",
        sequence=1,
        kind="interactive" if reply_id else "text",
        text=text,
        reply_id=reply_id,
        content={},
        context_wamid=None,
        sent_at=at,
    )


class Run:
    """A conversation's run, driven message by message as the flows consumer drives it."""

    def __init__(
        self,
        document: dict[str, Any],
        at: datetime,
        *,
        time_zone: str = "UTC",
        agent_conversations: bool = True,
    ) -> None:
        self.flow: FlowDefinition | None = parse_flow(document)
        self.state = RunState(CONVERSATION)
        started = ConversationStarted(
            conversation_id=CONVERSATION,
            phone_number_id="4801",
            display_phone_number="57300",
            contact_wa_id="5731",
            contact_name="Valentina",
            started_at=at,
        )
        self.apply(
            start(
                started,
                ActiveFlow(UUID(int=9), 1),
                time_zone,
                agent_conversations=agent_conversations,
            )
        )

    def apply(self, events: list[Payload]) -> list[Payload]:
        self.state = reduce(evolve, events, self.state)
        return events

    def send(self, customer: CustomerMessageReceived) -> list[Payload]:
        return self.apply(decide(self.flow, self.state, customer, workspace_id=WORKSPACE))


def texts(events: list[Payload]) -> list[str]:
    return [e.text for e in events if isinstance(e, OutboundMessageQueued)]


def test_greets_and_asks_on_the_first_message() -> None:
    run = Run(support_flow(GROUP), OFFICE_HOURS)
    events = run.send(message(OFFICE_HOURS, "hola"))
    assert texts(events) == ["Hola Valentina", "¿En qué te ayudamos?"]
    question = events[1]
    assert isinstance(question, OutboundMessageQueued)
    assert question.kind == "buttons"
    assert [o.id for o in question.options] == ["billing", "other"]
    assert isinstance(events[-1], QuestionAsked)
    assert run.state.status == "waiting"


def test_billing_in_office_hours_hands_off_to_the_group() -> None:
    run = Run(support_flow(GROUP), OFFICE_HOURS)
    run.send(message(OFFICE_HOURS, "hola"))
    events = run.send(message(OFFICE_HOURS + timedelta(minutes=1), "Facturación", "billing", 1))
    captured = next(e for e in events if isinstance(e, AnswerCaptured))
    assert (captured.variable, captured.value, captured.title) == (
        "topic",
        "billing",
        "Facturación",
    )
    branch = next(e for e in events if isinstance(e, ConditionEvaluated))
    assert (branch.rule, branch.next_block) == (0, "agent")
    assert "10:01" in branch.reason
    assert "tue" in branch.reason
    hand_off = events[-1]
    assert isinstance(hand_off, HandOffRequested)
    assert (hand_off.group_id, hand_off.rotation) == (GROUP, "available")
    assert texts(events) == ["Te comunico con un asesor"]
    # After a hand-off the bot stays quiet.
    assert run.send(message(OFFICE_HOURS + timedelta(minutes=2), "¿hola?", n=2)) == []


def test_billing_after_hours_says_so_and_ends() -> None:
    run = Run(support_flow(GROUP), EVENING)
    run.send(message(EVENING, "hola"))
    events = run.send(message(EVENING, None, "billing", 1))
    branch = next(e for e in events if isinstance(e, ConditionEvaluated))
    assert branch.rule is None
    assert branch.next_block == "closed"
    assert "18:30" in branch.reason
    assert "not in 08:00-18:00" in branch.reason
    assert texts(events) == ["Escríbenos en horario de oficina", "¡Gracias, Valentina!"]
    assert isinstance(events[-2], FlowEnded)
    close = events[-1]
    assert isinstance(close, CloseConversation)
    assert close.reason == "flow_ended"


def test_a_holiday_in_office_hours_takes_the_default_branch() -> None:
    christmas = datetime(2026, 12, 25, 15, 0, tzinfo=UTC)  # a Friday, 10:00 in Bogotá
    run = Run(support_flow(GROUP), christmas)
    run.send(message(christmas, "hola"))
    branch = next(
        e
        for e in run.send(message(christmas, None, "billing", 1))
        if isinstance(e, ConditionEvaluated)
    )
    assert branch.next_block == "closed"
    assert "is a holiday" in branch.reason


def test_an_answer_that_does_not_fit_is_asked_again_then_falls_back() -> None:
    run = Run(support_flow(GROUP), OFFICE_HOURS)
    run.send(message(OFFICE_HOURS, "hola"))
    first = run.send(message(OFFICE_HOURS, "¿qué?", n=1))
    rejected = first[0]
    assert isinstance(rejected, AnswerRejected)
    assert rejected.attempt == 1
    assert texts(first) == ["Elige una de las opciones, por favor", "¿En qué te ayudamos?"]
    second = run.send(message(OFFICE_HOURS, "no sé", n=2))
    assert isinstance(second[0], AnswerRejected)
    assert texts(second) == ["Escríbenos en horario de oficina", "¡Gracias, Valentina!"]


def test_a_typed_title_counts_as_the_button() -> None:
    run = Run(support_flow(GROUP), OFFICE_HOURS)
    run.send(message(OFFICE_HOURS, "hola"))
    events = run.send(message(OFFICE_HOURS, "  facturación ", n=1))
    assert isinstance(events[-1], HandOffRequested)


def condition_flow(clause: dict[str, Any], time_zone: str) -> dict[str, Any]:
    return {
        "name": "t",
        "start": "c",
        "time_zone": time_zone,
        "blocks": [
            {
                "id": "c",
                "type": "condition",
                "rules": [{"if": [clause], "next": "yes"}],
                "default": "no",
            },
            {"id": "yes", "type": "end", "text": "yes"},
            {"id": "no", "type": "end", "text": "no"},
        ],
    }


def branch_at(clause: dict[str, Any], at: datetime, time_zone: str) -> str:
    run = Run(condition_flow(clause, time_zone), at)
    return texts(run.send(message(at, "hola")))[0]


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        # Madrid: 09:00 local is 08:00 UTC before the clocks go back on 2026-10-25, 09:00 UTC after.
        (datetime(2026, 10, 24, 7, 30, tzinfo=UTC), "yes"),  # 09:30 CEST
        (datetime(2026, 10, 26, 7, 30, tzinfo=UTC), "no"),  # 08:30 CET
        (datetime(2026, 10, 26, 8, 30, tzinfo=UTC), "yes"),  # 09:30 CET
        (datetime(2026, 3, 29, 7, 30, tzinfo=UTC), "yes"),  # 09:30 CEST, the day clocks go forward
    ],
)
def test_office_hours_follow_daylight_saving(at: datetime, expected: str) -> None:
    clause = {"time": {"from": "09:00", "to": "17:00"}}
    assert branch_at(clause, at, "Europe/Madrid") == expected


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        (datetime(2026, 11, 25, 3, 30, tzinfo=UTC), "yes"),  # 22:30 Tue in Bogotá
        (datetime(2026, 11, 25, 5, 0, tzinfo=UTC), "yes"),  # 00:00 Wed
        (datetime(2026, 11, 25, 10, 59, tzinfo=UTC), "yes"),  # 05:59
        (datetime(2026, 11, 25, 11, 0, tzinfo=UTC), "no"),  # 06:00: the range is exclusive
        (datetime(2026, 11, 24, 20, 0, tzinfo=UTC), "no"),  # 15:00
    ],
)
def test_a_night_range_spans_midnight(at: datetime, expected: str) -> None:
    assert branch_at({"time": {"from": "22:00", "to": "06:00"}}, at, "America/Bogota") == expected


def test_days_are_local_days_not_utc_days() -> None:
    saturday_night_utc = datetime(2026, 11, 29, 2, 0, tzinfo=UTC)  # Sat 21:00 in Bogotá
    assert branch_at({"days": ["sat"]}, saturday_night_utc, "America/Bogota") == "yes"
    assert branch_at({"days": ["sun"]}, saturday_night_utc, "America/Bogota") == "no"


def test_a_replay_takes_the_same_branches_and_queues_the_same_messages() -> None:
    def play() -> list[Payload]:
        run = Run(support_flow(GROUP), EVENING)
        return run.send(message(EVENING, "hola")) + run.send(message(EVENING, None, "billing", 1))

    assert play() == play()


def test_expiration_is_capped_at_24_hours_after_the_start() -> None:
    document = {
        "name": "t",
        "start": "short",
        "blocks": [
            {"id": "short", "type": "set_expiration", "after": "3s", "next": "long"},
            {"id": "long", "type": "set_expiration", "after": "30h", "next": "bye"},
            {"id": "bye", "type": "connect_to_agent", "rotation": "no_owner"},
        ],
    }
    run = Run(document, OFFICE_HOURS)
    at = OFFICE_HOURS + timedelta(minutes=5)
    expirations = [e for e in run.send(message(at, "hola")) if isinstance(e, ExpirationRequested)]
    assert [e.expires_at for e in expirations] == [
        at + timedelta(seconds=3),
        OFFICE_HOURS + timedelta(hours=24),
    ]


def test_a_runtime_failure_follows_the_error_path() -> None:
    document = {
        "name": "t",
        "start": "greet",
        "on_error": "sorry",
        "blocks": [
            {"id": "greet", "type": "message", "text": "Your order {{order}}", "next": "bye"},
            {"id": "bye", "type": "end"},
            {
                "id": "sorry",
                "type": "connect_to_agent",
                "rotation": "no_owner",
                "text": "Un momento",
            },
        ],
    }
    events = Run(document, OFFICE_HOURS).send(message(OFFICE_HOURS, "hola"))
    failed = events[0]
    assert isinstance(failed, FlowFailed)
    assert (failed.block_id, failed.recovery) == ("greet", "error_path")
    assert "'order'" in failed.reason
    assert texts(events) == ["Un momento"]
    assert isinstance(events[-1], HandOffRequested)


def test_a_failure_without_an_error_path_goes_to_the_default_group() -> None:
    document = {
        "name": "t",
        "start": "greet",
        "blocks": [
            {"id": "greet", "type": "message", "text": "{{missing}}", "next": "bye"},
            {"id": "bye", "type": "end"},
        ],
    }
    events = Run(document, OFFICE_HOURS).send(message(OFFICE_HOURS, "hola"))
    assert isinstance(events[0], FlowFailed)
    assert events[0].recovery == "default_group"
    hand_off = events[1]
    assert isinstance(hand_off, HandOffRequested)
    assert hand_off.group_id is None
    assert "missing" in hand_off.reason


def test_no_active_flow_hands_off_rather_than_staying_silent() -> None:
    state = reduce(
        evolve,
        [
            FlowRunStarted(
                conversation_id=CONVERSATION,
                flow_id=None,
                version=None,
                phone_number_id="4801",
                contact_wa_id="5731",
                contact_name=None,
                time_zone="UTC",
                conversation_started_at=OFFICE_HOURS,
                agent_conversations=True,
            )
        ],
        RunState(CONVERSATION),
    )
    [hand_off] = decide(None, state, message(OFFICE_HOURS, "hola"), workspace_id=WORKSPACE)
    assert isinstance(hand_off, HandOffRequested)
    assert hand_off.group_id is None


def test_message_ids_are_derived_and_distinct() -> None:
    run = Run(support_flow(GROUP), EVENING)
    queued = [e for e in run.send(message(EVENING, "hola")) if isinstance(e, OutboundMessageQueued)]
    queued += [
        e
        for e in run.send(message(EVENING, None, "other", 1))
        if isinstance(e, OutboundMessageQueued)
    ]
    assert len({e.message_id for e in queued}) == len(queued) == 4


@pytest.mark.parametrize(
    ("change", "block", "fragment"),
    [
        (lambda f: f["blocks"].append({"id": "x", "type": "carousel"}), "x", "unknown block type"),
        (lambda f: f["blocks"][0].update(next="nowhere"), "greet", "does not exist: 'nowhere'"),
        (lambda f: f["blocks"].append({"id": "lonely", "type": "end"}), "lonely", "unreachable"),
        (
            lambda f: (f["blocks"][1].update(fallback="bye"), f["blocks"][4].update(next="closed")),
            "closed",
            "no way out",
        ),
        (
            lambda f: f["blocks"][2]["rules"][0]["if"].append(
                {"time": {"from": "8am", "to": "18:00"}}
            ),
            "route",
            "HH:MM",
        ),
        (lambda f: f.update(time_zone="America/Atlantis"), None, "America/Atlantis"),
        (
            lambda f: f["blocks"][3].update(rotation="specific", member=str(UUID(int=404))),
            "agent",
            "does not exist",
        ),
        (lambda f: f["blocks"][1].pop("fallback"), "ask", "fallback"),
        (lambda f: f["blocks"].append(dict(f["blocks"][0])), "greet", "two blocks"),
    ],
)
def test_invalid_flows_are_rejected_naming_the_block(
    change: Any, block: str | None, fragment: str
) -> None:
    document = support_flow(GROUP)
    change(document)
    with pytest.raises(FlowInvalid, match=fragment) as raised:
        parse_flow(document, members=[UUID(int=3)])
    assert raised.value.block == block


def test_the_sample_flow_is_valid() -> None:
    flow = parse_flow(support_flow(GROUP))
    assert [b.id for b in flow.blocks] == ["greet", "ask", "route", "agent", "closed", "bye"]


def test_groups_and_members_are_checked_when_given() -> None:
    parse_flow(support_flow(GROUP), members=[], groups=[GROUP])
    with pytest.raises(FlowInvalid, match=r"group .* does not exist") as raised:
        parse_flow(support_flow(GROUP), members=[], groups=[UUID(int=1)])
    assert raised.value.block == "agent"


# -- answers are option ids; titles are {{variable.title}} (grammar v2) -------------------


def titled_flow() -> dict[str, Any]:
    return {
        "name": "t",
        "start": "ask",
        "blocks": [
            {
                "id": "ask",
                "type": "question",
                "text": "¿Sobre qué?",
                "variable": "topic",
                "buttons": [
                    {"id": "billing", "title": "Facturación"},
                    {"id": "other", "title": "Otro"},
                ],
                "next": "route",
                "fallback": "bye",
            },
            {
                "id": "route",
                "type": "condition",
                "rules": [{"if": [{"variable": "topic", "equals": "billing"}], "next": "agent"}],
                "default": "bye",
            },
            {
                "id": "agent",
                "type": "connect_to_agent",
                "group": str(GROUP),
                "rotation": "available",
                "text": "Te paso con {{topic.title}} ({{topic}})",
            },
            {"id": "bye", "type": "end", "text": "Adiós"},
        ],
    }


@pytest.mark.parametrize(
    ("text", "reply_id"), [("Facturación", "billing"), ("facturación", None), ("BILLING", None)]
)
def test_a_condition_on_the_buttons_id_holds_and_the_title_is_shown(
    text: str, reply_id: str | None
) -> None:
    run = Run(titled_flow(), OFFICE_HOURS)
    run.send(message(OFFICE_HOURS, "hola"))
    events = run.send(message(OFFICE_HOURS, text, reply_id, 1))
    branch = next(e for e in events if isinstance(e, ConditionEvaluated))
    assert (branch.rule, branch.next_block) == (0, "agent")
    assert "topic='billing' vs 'billing'" in branch.reason
    assert texts(events) == ["Te paso con Facturación (billing)"]
    assert isinstance(events[-1], HandOffRequested)


def test_a_typed_answer_is_its_own_title() -> None:
    document = {
        "name": "t",
        "start": "ask",
        "blocks": [
            {"id": "ask", "type": "question", "text": "¿Nombre?", "variable": "n", "next": "bye"},
            {"id": "bye", "type": "end", "text": "Gracias {{n}} / {{n.title}}"},
        ],
    }
    run = Run(document, OFFICE_HOURS)
    run.send(message(OFFICE_HOURS, "hola"))
    assert texts(run.send(message(OFFICE_HOURS, " Ana ", n=1))) == ["Gracias Ana / Ana"]


def v1_record(payload: dict[str, Any], event_type: str) -> Payload:
    """A payload as a schema version 1 record carried it, read by today's registry."""
    envelope = {
        "event_id": str(UUID(int=11)),
        "event_type": event_type,
        "schema_version": 1,
        "stream_id": str(CONVERSATION),
        "workspace_id": str(WORKSPACE),
        "occurred_at": OFFICE_HOURS.isoformat(),
        "correlation_id": str(UUID(int=11)),
        "causation_id": None,
        "actor": {"kind": "bot", "id": "flows"},
        "payload": payload,
    }
    return decode(orjson.dumps(envelope), build_registry()).payload


def test_a_v1_answer_reads_as_the_option_id_with_its_title() -> None:
    base = {
        "conversation_id": str(CONVERSATION),
        "block_id": "ask",
        "variable": "topic",
        "captured_at": OFFICE_HOURS.isoformat(),
    }
    chosen = v1_record(
        {**base, "value": "Facturación", "option_id": "billing"}, "flow.answer_captured"
    )
    typed = v1_record({**base, "value": "hola", "option_id": None}, "flow.answer_captured")
    assert isinstance(chosen, AnswerCaptured)
    assert isinstance(typed, AnswerCaptured)
    assert (chosen.value, chosen.title) == ("billing", "Facturación")
    assert (typed.value, typed.title) == ("hola", "hola")


def v1_support_flow() -> dict[str, Any]:
    """A flow as published under grammar v1: conditions compare titles, texts show them."""
    flow = titled_flow()
    flow["blocks"][0]["next"] = "name"
    flow["blocks"].insert(
        1,
        {"id": "name", "type": "question", "text": "¿Nombre?", "variable": "n", "next": "route"},
    )
    flow["blocks"][2]["rules"] = [
        {"if": [{"variable": "topic", "equals": "Facturación"}], "next": "agent"},
        {"if": [{"variable": "topic", "in": ["Otro", "support"]}], "next": "bye"},
        {"if": [{"variable": "topic", "matches": "^Fact"}], "next": "agent"},
        {"if": [{"variable": "n", "equals": "Facturación"}], "next": "agent"},
    ]
    flow["blocks"][3]["text"] = "Te paso con {{topic}}, {{n}}"
    return flow


def test_a_flow_published_under_v1_means_the_same_in_v2() -> None:
    published = v1_record(
        {
            "workspace_id": str(WORKSPACE),
            "flow_id": str(UUID(int=9)),
            "version": 1,
            "name": "t",
            "definition": v1_support_flow(),
            "published_by": str(UUID(int=3)),
        },
        "directory.flow_published",
    )
    assert isinstance(published, FlowPublished)
    blocks = {b["id"]: b for b in published.definition["blocks"]}
    assert [rule["if"][0] for rule in blocks["route"]["rules"]] == [
        {"variable": "topic", "equals": "billing"},  # the title's id: the same answers hold
        {"variable": "topic", "in": ["other", "support"]},  # no title: kept, compared as id
        {"variable": "topic.title", "matches": "^Fact"},  # a pattern on titles stays one
        {"variable": "n", "equals": "Facturación"},  # typed text is unchanged
    ]
    assert blocks["agent"]["text"] == "Te paso con {{topic.title}}, {{n}}"
    assert blocks["ask"] == v1_support_flow()["blocks"][0]


def test_a_run_stored_under_v1_goes_on_as_it_would_have() -> None:
    """A run that captured a title under v1 and waits on its next question, resumed on the
    flow's v1 definition read as v2: the same branch, the same text."""
    flow = parse_flow(upcast_flow_definition_v1(v1_support_flow()))
    started = FlowRunStarted(
        conversation_id=CONVERSATION,
        flow_id=UUID(int=9),
        version=1,
        phone_number_id="4801",
        contact_wa_id="5731",
        contact_name="Valentina",
        time_zone="UTC",
        conversation_started_at=OFFICE_HOURS,
        agent_conversations=True,
    )
    stored = [
        started,
        QuestionAsked(conversation_id=CONVERSATION, block_id="ask", asked_at=OFFICE_HOURS),
        v1_record(
            {
                "conversation_id": str(CONVERSATION),
                "block_id": "ask",
                "variable": "topic",
                "value": "Facturación",
                "option_id": "billing",
                "captured_at": OFFICE_HOURS.isoformat(),
            },
            "flow.answer_captured",
        ),
        QuestionAsked(conversation_id=CONVERSATION, block_id="name", asked_at=OFFICE_HOURS),
    ]
    state = reduce(evolve, stored, RunState(CONVERSATION))
    events = decide(flow, state, message(OFFICE_HOURS, "Ana", n=3), workspace_id=WORKSPACE)
    branch = next(e for e in events if isinstance(e, ConditionEvaluated))
    assert (branch.rule, branch.next_block) == (0, "agent")
    assert texts(events) == ["Te paso con Facturación, Ana"]


# -- the flow version a conversation runs is chosen by its arrival --------------------------


def test_the_version_is_chosen_by_arrival_the_branches_by_the_message_time() -> None:
    written = datetime(2026, 11, 24, 15, 0, 0, tzinfo=UTC)  # Meta: whole seconds
    started = ConversationStarted(
        conversation_id=CONVERSATION,
        phone_number_id="4801",
        display_phone_number="57300",
        contact_wa_id="5731",
        contact_name="Valentina",
        started_at=written,
        received_at=written + timedelta(milliseconds=700),
    )
    assert arrival(started) == written + timedelta(milliseconds=700)
    # A record written before arrivals were recorded (v1) is chosen by its message time.
    v1 = v1_record(started.model_dump(mode="json", exclude={"received_at"}), "conversation.started")
    assert isinstance(v1, ConversationStarted)
    assert v1.received_at is None
    assert arrival(v1) == written


def test_a_run_starts_once_whatever_starts_arrive_later() -> None:
    started = ConversationStarted(
        conversation_id=CONVERSATION,
        phone_number_id="4801",
        display_phone_number="57300",
        contact_wa_id="5731",
        contact_name="Valentina",
        started_at=OFFICE_HOURS,
    )
    fresh = RunState(CONVERSATION)
    first = decide_start(
        fresh, started, ActiveFlow(UUID(int=9), 1), "UTC", agent_conversations=True
    )
    assert [type(e) for e in first] == [FlowRunStarted]
    begun = reduce(evolve, first, fresh)
    # Read again (a re-sent start, a replay), with another flow active by now: nothing.
    assert (
        decide_start(begun, started, ActiveFlow(UUID(int=8), 2), "UTC", agent_conversations=False)
        == []
    )
