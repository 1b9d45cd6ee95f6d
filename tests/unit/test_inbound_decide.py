"""Given a thread's events, when a record arrives, then these conversation events."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import reduce
from typing import Any
from uuid import UUID

import pytest

from events.base import Payload
from events.conversation import (
    CloseConversation,
    ConversationClosed,
    ConversationStarted,
    CustomerMessageReceived,
    MessageStatusUpdated,
)
from events.whatsapp import WhatsAppMessageReceived, WhatsAppStatusReceived
from services.inbound.decide import ThreadState, conversation_id, decide, evolve, thread_id

pytestmark = pytest.mark.unit
WORKSPACE = UUID(int=1)
THREAD = thread_id(WORKSPACE, "4801", "5731")
AT = datetime(2026, 11, 24, 12, tzinfo=UTC)


def message(wamid: str, kind: str = "text", **content: Any) -> WhatsAppMessageReceived:
    body: dict[str, Any] = {"from": "5731", "id": wamid, "timestamp": "1764000000", "type": kind}
    body[kind] = content or {"body": f"text of {wamid}"}
    return WhatsAppMessageReceived(
        waba_id="w",
        phone_number_id="4801",
        display_phone_number="57300",
        contact_wa_id="5731",
        contact_name="Valentina",
        message=body,
        received_at=AT,
    )


def status(wamid: str, name: str) -> WhatsAppStatusReceived:
    return WhatsAppStatusReceived(
        waba_id="w",
        phone_number_id="4801",
        display_phone_number="57300",
        status={"id": wamid, "status": name, "timestamp": "1764000031", "recipient_id": "5731"},
        received_at=AT,
    )


def close(target: UUID) -> CloseConversation:
    return CloseConversation(
        conversation_id=target,
        workspace_id=WORKSPACE,
        phone_number_id="4801",
        contact_wa_id="5731",
        reason="agent",
    )


def given(*records: Payload) -> ThreadState:
    """The state after deciding and applying ``records`` one by one."""
    state = ThreadState(thread_id=THREAD)
    for record in records:
        state = reduce(evolve, decide(record, state, now=AT), state)
    return state


def test_first_message_starts_a_conversation() -> None:
    events = decide(message("w1"), given())
    first = conversation_id(THREAD, 1)
    assert [type(e) for e in events] == [ConversationStarted, CustomerMessageReceived]
    started, received = events
    assert isinstance(started, ConversationStarted)
    assert isinstance(received, CustomerMessageReceived)
    assert started.conversation_id == received.conversation_id == first
    assert started.started_at == datetime.fromtimestamp(1764000000, tz=UTC)
    # When it arrived, beside when Meta says it was written: flows choose by arrival.
    assert started.received_at == AT
    assert received.text == "text of w1"


def test_next_message_joins_the_open_conversation() -> None:
    events = decide(message("w2"), given(message("w1")))
    assert [type(e) for e in events] == [CustomerMessageReceived]
    assert events[0].conversation_id == conversation_id(THREAD, 1)  # type: ignore[attr-defined]


def test_a_repeated_wamid_changes_nothing_even_after_a_close() -> None:
    assert decide(message("w1"), given(message("w1"))) == []
    closed = given(message("w1"), close(conversation_id(THREAD, 1)))
    assert decide(message("w1"), closed) == []


def test_a_message_after_a_close_starts_a_new_conversation() -> None:
    state = given(message("w1"), close(conversation_id(THREAD, 1)))
    events = decide(message("w2"), state)
    assert isinstance(events[0], ConversationStarted)
    assert events[0].conversation_id == conversation_id(THREAD, 2)


def test_closing_is_idempotent_and_takes_the_command_time() -> None:
    state = given(message("w1"))
    target = conversation_id(THREAD, 1)
    assert decide(close(target), state, now=AT) == [
        ConversationClosed(conversation_id=target, reason="agent", closed_at=AT)
    ]
    assert decide(close(target), given(message("w1"), close(target)), now=AT) == []


def test_other_message_types_are_kept() -> None:
    events = decide(message("w1", "location", latitude=4.6, longitude=-74.1), given())
    received = events[-1]
    assert isinstance(received, CustomerMessageReceived)
    assert received.kind == "location"
    assert received.content == {"latitude": 4.6, "longitude": -74.1}
    assert received.text is None


def test_interactive_reply_captures_title_and_id() -> None:
    events = decide(
        message(
            "w1",
            "interactive",
            type="button_reply",
            button_reply={"id": "billing", "title": "Facturación"},
        ),
        given(),
    )
    received = events[-1]
    assert isinstance(received, CustomerMessageReceived)
    assert (received.text, received.reply_id) == ("Facturación", "billing")


def test_statuses_attach_to_the_conversation_and_repeat_as_nothing() -> None:
    state = given(message("w1"))
    [update] = decide(status("out.1", "delivered"), state)
    assert isinstance(update, MessageStatusUpdated)
    assert update.conversation_id == conversation_id(THREAD, 1)
    assert (
        decide(status("out.1", "delivered"), given(message("w1"), status("out.1", "delivered")))
        == []
    )
    assert decide(status("out.1", "read"), given(message("w1"), status("out.1", "delivered")))


def test_a_status_with_no_conversation_is_still_recorded() -> None:
    [update] = decide(status("out.9", "sent"), given())
    assert isinstance(update, MessageStatusUpdated)
    assert update.conversation_id is None
