"""Agent conversations per business number: the directory's switch, the flow grammar's
``fallback``, what a run does while the switch is off, and how older records read."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import reduce
from typing import Any
from uuid import UUID, uuid4

import orjson
import pytest

from events.base import Payload
from events.catalogue import build_registry
from events.codec import decode
from events.conversation import ConversationStarted, CustomerMessageReceived
from events.directory import (
    AgentConversationsSet,
    BusinessNumberConnected,
    CommandRejected,
    CreateWorkspace,
    SetAgentConversations,
)
from events.envelope import Actor, Envelope
from events.flow_language.grammar import FlowInvalid, parse_flow
from events.flows import (
    FlowEnded,
    FlowFailed,
    FlowRunStarted,
    HandOffRequested,
    HandOffWithheld,
)
from events.outbound import OutboundMessageQueued
from projections.conversations import history_entry
from projections.directory import NumberAgentConversations, NumberRow, OutcomeRow, directory_rows
from services.directory.decide import (
    NumberState,
    WorkspaceState,
    decide_create_workspace,
    decide_set_agent_conversations,
    evolve_number,
)
from services.flows.decide import (
    ActiveFlow,
    RunState,
    SwitchChange,
    agent_conversations_as_of,
    decide,
    evolve,
    start,
)

pytestmark = pytest.mark.unit
WORKSPACE = UUID(int=1)
OTHER = UUID(int=2)
ADMIN = UUID(int=3)
GROUP = UUID(int=77)
CONVERSATION = UUID(int=5)
NUMBER = "4801"
AT = datetime(2027, 3, 1, 15, 0, tzinfo=UTC)


def hand_off_flow(*, fallback: str | None = "later", on_error: str | None = None) -> dict[str, Any]:
    """hello -> agent (connect to GROUP) [fallback: later -> bye]; an end block on error."""
    agent: dict[str, Any] = {
        "id": "agent",
        "type": "connect_to_agent",
        "group": str(GROUP),
        "rotation": "available",
        "text": "Te paso con un asesor",
    }
    if fallback is not None:
        agent["fallback"] = fallback
    flow: dict[str, Any] = {
        "name": "Hand-off",
        "start": "hello",
        "blocks": [
            {"id": "hello", "type": "message", "text": "Hola", "next": "agent"},
            agent,
        ],
    }
    if fallback == "later":
        flow["blocks"] += [
            {"id": "later", "type": "message", "text": "Hoy no hay asesores", "next": "bye"},
            {"id": "bye", "type": "end", "text": "Gracias"},
        ]
    if on_error is not None:
        flow["on_error"] = on_error
        flow["blocks"].append({"id": on_error, "type": "end", "text": "Algo falló"})
    return flow


def first_message(agent_conversations: bool, document: dict[str, Any]) -> list[Payload]:
    started = ConversationStarted(
        conversation_id=CONVERSATION,
        phone_number_id=NUMBER,
        display_phone_number="15550004801",
        contact_wa_id="5731",
        contact_name="Ana",
        started_at=AT,
    )
    state = reduce(
        evolve,
        start(started, ActiveFlow(UUID(int=9), 1), "UTC", agent_conversations=agent_conversations),
        RunState(CONVERSATION),
    )
    message = CustomerMessageReceived(
        conversation_id=CONVERSATION,
        wamid="w1",
        sequence=1,
        kind="text",
        text="hola",
        reply_id=None,
        content={"body": "hola"},
        context_wamid=None,
        sent_at=AT,
    )
    return decide(parse_flow(document), state, message, workspace_id=WORKSPACE)


def texts(events: list[Payload]) -> list[str]:
    return [e.text for e in events if isinstance(e, OutboundMessageQueued)]


# -- the directory's switch ------------------------------------------------------------------


def owned(enabled: bool = False) -> NumberState:
    return evolve_number(
        NumberState(NUMBER),
        BusinessNumberConnected(
            workspace_id=WORKSPACE, phone_number_id=NUMBER, agent_conversations=enabled
        ),
    )


def switch(enabled: bool, workspace: UUID = WORKSPACE) -> SetAgentConversations:
    return SetAgentConversations(
        workspace_id=workspace, phone_number_id=NUMBER, enabled=enabled, set_by=ADMIN
    )


def test_an_admin_turns_agent_conversations_on_for_its_number() -> None:
    [event] = decide_set_agent_conversations(switch(True), uuid4(), owned())
    assert event == AgentConversationsSet(
        workspace_id=WORKSPACE, phone_number_id=NUMBER, enabled=True, set_by=ADMIN
    )
    assert evolve_number(owned(), event).agent_conversations is True


def test_setting_the_value_it_has_is_accepted_so_the_caller_gets_a_verdict() -> None:
    [event] = decide_set_agent_conversations(switch(True), uuid4(), owned(True))
    assert isinstance(event, AgentConversationsSet)


def test_another_workspaces_number_is_refused() -> None:
    command_id = uuid4()
    [rejected] = decide_set_agent_conversations(switch(True, OTHER), command_id, owned())
    assert isinstance(rejected, CommandRejected)
    assert rejected.command_id == command_id
    assert "not this workspace's" in rejected.reason


def test_a_number_nobody_owns_is_refused() -> None:
    [rejected] = decide_set_agent_conversations(switch(True), uuid4(), NumberState(NUMBER))
    assert isinstance(rejected, CommandRejected)


@pytest.mark.parametrize("enabled", [True, False])
def test_a_new_workspace_connects_its_number_with_the_switch_it_asked_for(enabled: bool) -> None:
    command = CreateWorkspace(
        workspace_id=WORKSPACE,
        name="Acme",
        time_zone="UTC",
        phone_number_id=NUMBER,
        admin_member_id=ADMIN,
        admin_name="Ana",
        admin_token_hash="ab" * 32,
        agent_conversations=enabled,
    )
    number = NumberState(NUMBER)
    events = decide_create_workspace(command, uuid4(), WorkspaceState(WORKSPACE), number)
    [connected] = [e for e in events if isinstance(e, BusinessNumberConnected)]
    assert connected.agent_conversations is enabled


# -- older records: the switch did not exist, every number handed off ----------------------


def record(event_type: str, payload: dict[str, Any]) -> bytes:
    return orjson.dumps(
        {
            "event_id": str(uuid4()),
            "event_type": event_type,
            "schema_version": 1,
            "stream_id": str(WORKSPACE),
            "workspace_id": str(WORKSPACE),
            "occurred_at": AT.isoformat(),
            "correlation_id": str(uuid4()),
            "causation_id": None,
            "actor": {"kind": "system", "id": None},
            "payload": payload,
        }
    )


def test_a_number_connected_by_version_1_reads_as_handing_off() -> None:
    data = record(
        "directory.business_number_connected",
        {"workspace_id": str(WORKSPACE), "phone_number_id": NUMBER},
    )
    payload = decode(data, build_registry()).payload
    assert isinstance(payload, BusinessNumberConnected)
    assert payload.agent_conversations is True


def test_a_version_1_workspace_command_reads_as_handing_off() -> None:
    data = record(
        "directory.create_workspace",
        {
            "workspace_id": str(WORKSPACE),
            "name": "Acme",
            "time_zone": "UTC",
            "phone_number_id": NUMBER,
            "admin_member_id": str(ADMIN),
            "admin_name": "Ana",
            "admin_token_hash": "ab" * 32,
        },
    )
    payload = decode(data, build_registry()).payload
    assert isinstance(payload, CreateWorkspace)
    assert payload.agent_conversations is True


def test_a_run_started_by_version_1_keeps_handing_off() -> None:
    data = record(
        "flow.run_started",
        {
            "conversation_id": str(CONVERSATION),
            "flow_id": None,
            "version": None,
            "phone_number_id": NUMBER,
            "contact_wa_id": "5731",
            "contact_name": None,
            "time_zone": "UTC",
            "conversation_started_at": AT.isoformat(),
        },
    )
    payload = decode(data, build_registry()).payload
    assert isinstance(payload, FlowRunStarted)
    assert payload.agent_conversations is True


# -- the switch as of a conversation's start --------------------------------------------------


def change(minutes: int, kind: str, enabled: bool) -> SwitchChange:
    return SwitchChange(AT + timedelta(minutes=minutes), kind, enabled)  # type: ignore[arg-type]


def test_the_last_change_before_the_start_holds() -> None:
    changes = [change(-10, "connected", False), change(-5, "set", True), change(5, "set", False)]
    assert agent_conversations_as_of(changes, AT) is True
    assert agent_conversations_as_of(changes, AT + timedelta(minutes=6)) is False
    assert agent_conversations_as_of(changes, AT - timedelta(minutes=7)) is False


def test_a_change_at_the_very_instant_of_the_start_holds() -> None:
    assert agent_conversations_as_of([change(0, "connected", True)], AT) is True


def test_before_any_change_a_number_has_the_value_it_was_connected_with() -> None:
    assert agent_conversations_as_of([change(1, "connected", False)], AT) is False


def test_a_number_connected_before_the_switch_existed_hands_off_until_an_admin_says() -> None:
    # Its connection predates this view (no "connected" row); an admin turned it off later.
    assert agent_conversations_as_of([change(5, "set", False)], AT) is True
    assert agent_conversations_as_of([], AT) is True


# -- a run while the switch is off -------------------------------------------------------------


def test_while_off_the_block_follows_its_fallback_and_says_why() -> None:
    events = first_message(False, hand_off_flow())
    assert not any(isinstance(e, HandOffRequested) for e in events)
    withheld = next(e for e in events if isinstance(e, HandOffWithheld))
    assert (withheld.block_id, withheld.fallback) == ("agent", "later")
    assert f"agent conversations are off on business number {NUMBER}" in withheld.reason
    # The block's own words ("Te paso con un asesor") are not said: nobody is coming.
    assert texts(events) == ["Hola", "Hoy no hay asesores", "Gracias"]
    assert isinstance(events[-2], FlowEnded)


def test_while_off_without_a_fallback_the_flow_fails_there_and_takes_its_error_path() -> None:
    events = first_message(False, hand_off_flow(fallback=None, on_error="sorry"))
    withheld = next(e for e in events if isinstance(e, HandOffWithheld))
    assert withheld.fallback is None
    failed = next(e for e in events if isinstance(e, FlowFailed))
    assert (failed.block_id, failed.recovery) == ("agent", "error_path")
    assert "no fallback" in failed.reason
    assert not any(isinstance(e, HandOffRequested) for e in events)
    assert texts(events) == ["Hola", "Algo falló"]


def test_while_off_with_neither_the_workspace_queue_still_hears_the_customer() -> None:
    events = first_message(False, hand_off_flow(fallback=None))
    failed = next(e for e in events if isinstance(e, FlowFailed))
    assert failed.recovery == "default_group"
    hand_off = events[-1]
    assert isinstance(hand_off, HandOffRequested)
    assert hand_off.group_id is None  # the workspace's queue, for admins: never silence
    assert "agent conversations are off" in hand_off.reason


def test_while_on_the_block_hands_off_as_always() -> None:
    events = first_message(True, hand_off_flow())
    assert not any(isinstance(e, HandOffWithheld) for e in events)
    hand_off = events[-1]
    assert isinstance(hand_off, HandOffRequested)
    assert (hand_off.group_id, hand_off.rotation) == (GROUP, "available")
    assert texts(events) == ["Hola", "Te paso con un asesor"]


# -- the grammar's fallback ----------------------------------------------------------------


def test_a_fallback_may_be_the_only_way_to_a_block() -> None:
    flow = parse_flow(hand_off_flow())  # "later" and "bye" are reached only by the fallback
    assert flow.block("agent").fallback == "later"  # type: ignore[union-attr]


def test_a_fallback_to_a_missing_block_is_refused_naming_the_block() -> None:
    with pytest.raises(FlowInvalid, match="block 'agent': transition to a block that does not"):
        parse_flow(hand_off_flow(fallback="nowhere"))


def test_a_fallback_that_comes_back_without_a_question_is_refused() -> None:
    document = hand_off_flow(fallback="hello")  # hello -> agent -> hello ... while off
    with pytest.raises(FlowInvalid, match="block 'agent': fallback 'hello' leads back here"):
        parse_flow(document)


def test_a_fallback_that_comes_back_through_a_question_is_a_conversation() -> None:
    document = hand_off_flow(fallback="retry")
    document["blocks"].append(
        {
            "id": "retry",
            "type": "question",
            "text": "¿Lo intentamos de nuevo?",
            "variable": "again",
            "next": "agent",
        }
    )
    parse_flow(document)


# -- what the read models show ---------------------------------------------------------------


def envelope(payload: Payload, *, causation: UUID | None = None) -> Envelope:
    return Envelope.wrap(
        payload,
        event_id=uuid4(),
        stream_id=str(WORKSPACE),
        workspace_id=WORKSPACE,
        occurred_at=AT,
        correlation_id=uuid4(),
        causation_id=causation,
        actor=Actor(kind="member", id=str(ADMIN)),
    )


def test_the_switch_shows_on_the_number_and_answers_the_admin() -> None:
    command_id = uuid4()
    rows = directory_rows(
        envelope(
            AgentConversationsSet(
                workspace_id=WORKSPACE, phone_number_id=NUMBER, enabled=True, set_by=ADMIN
            ),
            causation=command_id,
        )
    )
    assert rows[0] == NumberAgentConversations(NUMBER, True)
    outcome = rows[1]
    assert isinstance(outcome, OutcomeRow)
    assert (outcome.command_id, outcome.outcome) == (command_id, "accepted")
    assert outcome.result == {"phone_number_id": NUMBER, "agent_conversations": True}


def test_a_connected_number_shows_its_switch() -> None:
    rows = directory_rows(
        envelope(
            BusinessNumberConnected(
                workspace_id=WORKSPACE, phone_number_id=NUMBER, agent_conversations=False
            )
        )
    )
    assert rows == [NumberRow(NUMBER, WORKSPACE, False)]


def test_the_history_says_why_nobody_was_handed_the_conversation() -> None:
    withheld = HandOffWithheld(
        conversation_id=CONVERSATION,
        block_id="agent",
        reason="agent conversations are off on business number 4801",
        fallback="later",
        withheld_at=AT,
    )
    line = history_entry(envelope(withheld), None)
    assert line is not None
    assert line.text is not None
    assert "not handed to agents at agent" in line.text
    assert "agent conversations are off on business number 4801" in line.text
    assert "'later'" in line.text
