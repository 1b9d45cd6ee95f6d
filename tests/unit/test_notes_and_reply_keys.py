"""Private notes (the inbound service's decision on a thread) and idempotent replies (the
gateway's rules on an ``Idempotency-Key``): pure, no I/O."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import reduce
from uuid import UUID

import pytest

from events.base import Payload
from events.conversation import CloseConversation
from events.notes import AddNote, NoteAdded, NoteRefused
from events.whatsapp import WhatsAppMessageReceived
from services.conversations import permissions
from services.conversations.permissions import Allowed, Asker, ConversationFacts, Refused
from services.gateway import idempotency
from services.gateway.idempotency import KeptReply, Verdict
from services.inbound.decide import ThreadState, conversation_id, decide, evolve, thread_id

pytestmark = pytest.mark.unit
WORKSPACE, AUTHOR, NOTE = UUID(int=1), UUID(int=2), UUID(int=3)
THREAD = thread_id(WORKSPACE, "4801", "5731")
FIRST, SECOND = conversation_id(THREAD, 1), conversation_id(THREAD, 2)
AT = datetime(2026, 11, 24, 12, tzinfo=UTC)


def message(wamid: str) -> WhatsAppMessageReceived:
    return WhatsAppMessageReceived(
        waba_id="w",
        phone_number_id="4801",
        display_phone_number="57300",
        contact_id="5731",
        contact_wa_id="5731",
        contact_user_id=None,
        contact_name="Valentina",
        contact={"profile": {"name": "Valentina"}, "wa_id": "5731"},
        message={
            "from": "5731",
            "id": wamid,
            "timestamp": "1764000000",
            "type": "text",
            "text": {"body": "hola"},
        },
        received_at=AT,
    )


def given(*records: Payload) -> ThreadState:
    state = ThreadState(thread_id=THREAD)
    for record in records:
        state = reduce(evolve, decide(record, state, now=AT), state)
    return state


def note(text: str = "Pidió factura", conversation: UUID = FIRST) -> AddNote:
    return AddNote(
        conversation_id=conversation,
        workspace_id=WORKSPACE,
        phone_number_id="4801",
        contact_wa_id="5731",
        note_id=NOTE,
        author_id=AUTHOR,
        text=text,
    )


def close(target: UUID) -> CloseConversation:
    return CloseConversation(
        conversation_id=target,
        workspace_id=WORKSPACE,
        phone_number_id="4801",
        contact_wa_id="5731",
        reason="agent",
    )


def test_a_note_is_added_to_the_open_conversation_at_the_commands_time() -> None:
    state = given(message("wamid.1"))
    assert decide(note("  Pidió factura \n"), state, now=AT) == [
        NoteAdded(
            conversation_id=FIRST, note_id=NOTE, author_id=AUTHOR, text="Pidió factura", added_at=AT
        )
    ]


def test_a_note_may_go_on_a_closed_conversation_of_the_thread() -> None:
    state = given(message("wamid.1"), close(FIRST), message("wamid.2"))
    assert state.open_conversation == SECOND
    [added] = decide(note(conversation=FIRST), state, now=AT)
    assert isinstance(added, NoteAdded)
    assert added.conversation_id == FIRST


def test_a_note_changes_nothing_the_thread_decides_on() -> None:
    state = given(message("wamid.1"))
    after = reduce(evolve, decide(note(), state, now=AT), state)
    assert after == state  # no message count, no open conversation moved


@pytest.mark.parametrize(
    ("command", "reason"),
    [
        (note(conversation=SECOND), f"conversation {SECOND} is not this contact's on this number"),
        (note(" \n "), "a note needs some text"),
        (note("x" * 4097), "a note holds at most 4096 characters (got 4097)"),
        (
            note("a\x07b"),
            "the note contains a control character (U+0007) at position 1"
            " (only line breaks and tabs are allowed)",
        ),
    ],
)
def test_a_note_is_refused_with_the_reason(command: AddNote, reason: str) -> None:
    state = given(message("wamid.1"))
    assert decide(command, state, now=AT) == [
        NoteRefused(
            conversation_id=command.conversation_id, note_id=NOTE, author_id=AUTHOR, reason=reason
        )
    ]


def test_a_note_on_a_thread_with_no_conversation_is_refused() -> None:
    [refused] = decide(note(), ThreadState(thread_id=THREAD), now=AT)
    assert isinstance(refused, NoteRefused)


def test_a_note_needs_its_event_time() -> None:
    with pytest.raises(ValueError, match="event time"):
        decide(note(), given(message("wamid.1")))


def test_every_member_who_sees_a_conversation_may_note_it_open_or_closed() -> None:
    group = UUID(int=7)
    closed = ConversationFacts(FIRST, "closed", "agent", group, UUID(int=8), "assigned")
    agent = Asker(UUID(int=9), "agent", frozenset({group}))
    assert isinstance(permissions.add_note(agent, closed, FIRST), Allowed)
    stranger = Asker(UUID(int=10), "agent", frozenset())
    refused = permissions.add_note(stranger, closed, FIRST)
    assert isinstance(refused, Refused)
    assert refused.status == 404


# -- idempotent replies ---------------------------------------------------------------------

MEMBER, OTHER_MEMBER, OTHER_WORKSPACE = UUID(int=20), UUID(int=21), UUID(int=22)


def test_a_keys_message_id_is_the_same_every_time_and_its_own() -> None:
    one = idempotency.reply_message_id(WORKSPACE, MEMBER, "k-1")
    assert one == idempotency.reply_message_id(WORKSPACE, MEMBER, "k-1")
    others = {
        idempotency.reply_message_id(WORKSPACE, MEMBER, "k-2"),
        idempotency.reply_message_id(WORKSPACE, OTHER_MEMBER, "k-1"),
        idempotency.reply_message_id(OTHER_WORKSPACE, MEMBER, "k-1"),
        idempotency.reply_command_id(WORKSPACE, MEMBER, "k-1"),
    }
    assert one not in others
    assert len(others) == 4


def test_a_fingerprint_tells_the_conversation_and_the_exact_text() -> None:
    base = idempotency.fingerprint(FIRST, "Hola")
    assert base == idempotency.fingerprint(FIRST, "Hola")
    assert base != idempotency.fingerprint(FIRST, "Hola ")
    assert base != idempotency.fingerprint(SECOND, "Hola")


def kept(acknowledged: bool, text: str = "Hola") -> KeptReply:
    return KeptReply(
        fingerprint=idempotency.fingerprint(FIRST, text),
        conversation_id=FIRST,
        message_id=UUID(int=30),
        command_id=UUID(int=31),
        record=b"{}",
        acknowledged=acknowledged,
    )


def test_the_verdict_on_a_key() -> None:
    request = idempotency.fingerprint(FIRST, "Hola")
    assert idempotency.verdict(None, request) is Verdict.NEW
    assert idempotency.verdict(kept(False), request) is Verdict.SEND_AGAIN
    assert idempotency.verdict(kept(True), request) is Verdict.ANSWERED
    assert idempotency.verdict(kept(True, "Chao"), request) is Verdict.OTHER_REQUEST
    assert idempotency.verdict(kept(False, "Chao"), request) is Verdict.OTHER_REQUEST


@pytest.mark.parametrize("key", ["", " ", "a b", "ñ", "x" * 256, "a\nb"])
def test_a_key_is_visible_ascii_up_to_255(key: str) -> None:
    assert idempotency.key_problem(key) is not None


@pytest.mark.parametrize("key", ["a", "8c1e0f4e-6b1d-4f7a-9a51-0d1c2b3a4f5e", "x" * 255, "~!@#"])
def test_keys_clients_send_are_accepted(key: str) -> None:
    assert idempotency.key_problem(key) is None
