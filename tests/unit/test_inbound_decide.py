"""Given a thread's events, when a record arrives, then these conversation events."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import reduce
from typing import Any
from uuid import UUID

import pytest

from events.base import Payload
from events.conversation import (
    BusinessMessageEchoed,
    CloseConversation,
    ConversationClosed,
    ConversationStarted,
    CustomerMessageReceived,
    MessageEdited,
    MessageRevoked,
    MessageStatusUpdated,
)
from events.envelope import Actor, Envelope
from events.whatsapp import WhatsAppMessageEchoed, WhatsAppMessageReceived, WhatsAppStatusReceived
from services.inbound.decide import ThreadState, conversation_id, decide, evolve, thread_id
from services.inbound.handlers import conversation_envelopes

pytestmark = pytest.mark.unit
WORKSPACE = UUID(int=1)
THREAD = thread_id(WORKSPACE, "4801", "5731")
AT = datetime(2026, 11, 24, 12, tzinfo=UTC)


def message(
    wamid: str, kind: str = "text", *, around: dict[str, Any] | None = None, **content: Any
) -> WhatsAppMessageReceived:
    body: dict[str, Any] = {"from": "5731", "id": wamid, "timestamp": "1764000000", "type": kind}
    body[kind] = content or {"body": f"text of {wamid}"}
    return WhatsAppMessageReceived(
        waba_id="w",
        phone_number_id="4801",
        display_phone_number="57300",
        contact_id="5731",
        contact_wa_id="5731",
        contact_user_id="CO.5731",
        contact_name="Valentina",
        contact={"profile": {"name": "Valentina"}, "wa_id": "5731", "user_id": "CO.5731"},
        message=body | (around or {}),
        received_at=AT,
    )


def echo(wamid: str, kind: str = "text", **content: Any) -> WhatsAppMessageEchoed:
    body: dict[str, Any] = {
        "from": "57300",
        "to": "5731",
        "id": wamid,
        "timestamp": "1764000040",
        "type": kind,
        kind: content or {"body": f"echo {wamid}"},
    }
    return WhatsAppMessageEchoed(
        waba_id="w",
        phone_number_id="4801",
        display_phone_number="57300",
        contact_id="5731",
        contact_wa_id="5731",
        contact_user_id=None,
        contact_name=None,
        contact=None,
        message=body,
        received_at=AT,
    )


def status(wamid: str, name: str, **more: Any) -> WhatsAppStatusReceived:
    return WhatsAppStatusReceived(
        waba_id="w",
        phone_number_id="4801",
        display_phone_number="57300",
        status={
            "id": wamid,
            "status": name,
            "timestamp": "1764000031",
            "recipient_id": "5731",
            **more,
        },
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


def sent_in(conversation: UUID) -> dict[str, str]:
    """What Meta returns in a status of a message switchboard sent (the dispatcher sends the
    conversation id as ``biz_opaque_callback_data``)."""
    return {"biz_opaque_callback_data": str(conversation)}


def test_statuses_attach_to_the_conversation_that_sent_and_repeat_as_nothing() -> None:
    first = conversation_id(THREAD, 1)
    state = given(message("w1"))
    [update] = decide(status("out.1", "delivered", **sent_in(first)), state)
    assert isinstance(update, MessageStatusUpdated)
    assert update.conversation_id == first
    assert (update.recipient_wa_id, update.status) == ("5731", "delivered")
    delivered = given(message("w1"), status("out.1", "delivered", **sent_in(first)))
    assert decide(status("out.1", "delivered", **sent_in(first)), delivered) == []
    assert decide(status("out.1", "read", **sent_in(first)), delivered)


def test_a_status_of_an_earlier_conversation_stays_there() -> None:
    """Issue 8, item 13: it used to be added to the contact's current conversation."""
    first, second = conversation_id(THREAD, 1), conversation_id(THREAD, 2)
    state = given(message("w1"), close(first), message("w2"))
    assert state.open_conversation == second
    [late] = decide(status("out.1", "read", **sent_in(first)), state)
    assert isinstance(late, MessageStatusUpdated)
    assert late.conversation_id == first


def test_a_status_of_a_message_the_thread_never_saw_is_kept_unattached() -> None:
    """Sent by another tool on the number, or a callback naming another thread."""
    state = given(message("w1"))
    for record in (
        status("out.9", "sent"),
        status("out.9", "read", **sent_in(conversation_id(UUID(int=7), 1))),
        status("out.9", "delivered", biz_opaque_callback_data="not a uuid"),
    ):
        [update] = decide(record, state)
        assert isinstance(update, MessageStatusUpdated)
        assert update.conversation_id is None
    [update] = decide(status("out.9", "sent"), given())
    assert isinstance(update, MessageStatusUpdated)
    assert update.conversation_id is None


def test_played_and_statuses_meta_adds_later_are_kept() -> None:
    """Issue 8, item 3: ``played`` (a voice message listened to) was dropped."""
    for name in ("played", "warning"):
        [update] = decide(status("out.1", name), given(message("w1")))
        assert isinstance(update, MessageStatusUpdated)
        assert update.status == name


def test_a_status_for_a_business_scoped_user_names_it() -> None:
    record = status("out.1", "read", recipient_id="", recipient_user_id="US.134")
    [update] = decide(record, given())
    assert isinstance(update, MessageStatusUpdated)
    assert update.recipient_wa_id == "US.134"


def test_a_message_stamped_in_the_future_is_dated_when_it_arrived() -> None:
    """Issue 8, item 11: a clock ahead must not date a message (or a status) in the future."""
    ahead = message("w1").model_copy(update={"received_at": datetime(2025, 1, 1, tzinfo=UTC)})
    started, received = decide(ahead, given())
    assert isinstance(started, ConversationStarted)
    assert isinstance(received, CustomerMessageReceived)
    arrival = datetime(2025, 1, 1, tzinfo=UTC)
    assert started.started_at == received.sent_at == received.received_at == arrival
    assert started.received_at == arrival
    on_time = decide(message("w2"), given())[-1]
    assert isinstance(on_time, CustomerMessageReceived)
    assert on_time.sent_at == datetime.fromtimestamp(1764000000, tz=UTC)
    assert on_time.received_at == AT


def test_the_contact_details_meta_sends_start_the_conversation() -> None:
    record = message("w1").model_copy(
        update={
            "contact_id": "US.134",
            "contact_wa_id": None,
            "contact_user_id": "US.134",
            "contact": {
                "profile": {"name": "Sheena", "username": "@sheena"},
                "user_id": "US.134",
                "country_code": "US",
            },
        }
    )
    started = decide(record, given())[0]
    assert isinstance(started, ConversationStarted)
    assert (
        started.contact_wa_id,
        started.contact_user_id,
        started.contact_username,
        started.contact_country_code,
    ) == ("US.134", "US.134", "@sheena", "US")


def test_what_meta_says_around_a_message_is_kept() -> None:
    """Issue 8, item 3: reply-to, forwarding, the ad, the group, message-level errors."""
    context = {"from": "57300", "id": "wamid.prev", "frequently_forwarded": True}
    referral = {"source_type": "ad", "source_id": "ADID", "headline": "Promo"}
    received = decide(
        message("w1", around={"context": context, "referral": referral, "group_id": "g.1"}),
        given(),
    )[-1]
    assert isinstance(received, CustomerMessageReceived)
    assert (received.context, received.context_wamid, received.referral, received.group_id) == (
        context,
        "wamid.prev",
        referral,
        "g.1",
    )
    errors = [{"code": 131051, "title": "Message type unknown"}]
    unsupported = message("w2", "unsupported", around={"errors": errors})
    unsupported.message.pop("unsupported")
    received = decide(unsupported, given())[-1]
    assert isinstance(received, CustomerMessageReceived)
    assert (received.kind, received.content, received.errors) == ("unsupported", {}, errors)


def edit(wamid: str, original: str, body: str) -> WhatsAppMessageReceived:
    return message(
        wamid,
        "edit",
        original_message_id=original,
        message={"type": "text", "text": {"body": body}},
    )


def test_an_edit_changes_the_original_message_not_a_new_line() -> None:
    """Issue 8, item 3: edits were added as new messages."""
    first = conversation_id(THREAD, 1)
    state = given(message("w1"))
    [edited] = decide(edit("w1.e", "w1", "corrected"), state)
    assert edited == MessageEdited(
        conversation_id=first,
        wamid="w1",
        edit_wamid="w1.e",
        author="customer",
        kind="text",
        text="corrected",
        content={"body": "corrected"},
        edited_at=datetime.fromtimestamp(1764000000, tz=UTC),
    )
    assert (
        decide(edit("w1.e", "w1", "corrected"), given(message("w1"), edit("w1.e", "w1", "x"))) == []
    )


def test_a_revoke_marks_the_original_even_in_a_closed_conversation() -> None:
    first = conversation_id(THREAD, 1)
    state = given(message("w1"), close(first), message("w2"))
    [revoked] = decide(message("w1.r", "revoke", original_message_id="w1"), state)
    assert isinstance(revoked, MessageRevoked)
    assert (revoked.conversation_id, revoked.wamid, revoked.author) == (first, "w1", "customer")


def test_an_edit_of_a_message_never_seen_is_kept_as_a_message() -> None:
    events = decide(edit("w9.e", "w9", "hola"), given())
    received = events[-1]
    assert isinstance(received, CustomerMessageReceived)
    assert (received.kind, received.text) == ("edit", "hola")


def test_an_echo_is_a_line_of_the_business_and_may_start_the_conversation() -> None:
    """Issue 8, item 3: smb_message_echoes must show as the business's messages."""
    started, echoed = decide(echo("e1"), given())
    assert isinstance(started, ConversationStarted)
    assert isinstance(echoed, BusinessMessageEchoed)
    assert (echoed.conversation_id, echoed.text) == (conversation_id(THREAD, 1), "echo e1")
    state = given(message("w1"))
    [joined] = decide(echo("e2"), state)
    assert isinstance(joined, BusinessMessageEchoed)
    assert joined.conversation_id == conversation_id(THREAD, 1)
    after = given(message("w1"), echo("e2"))
    assert decide(echo("e2"), after) == []
    [update] = decide(status("e2", "read"), after)
    assert isinstance(update, MessageStatusUpdated)
    assert update.conversation_id == conversation_id(THREAD, 1)
    [edited] = decide(echo("e2.e", "edit", original_message_id="e2", message={}), after)
    assert isinstance(edited, MessageEdited)
    assert edited.author == "business"


def test_the_same_record_routed_to_two_workspaces_gives_events_of_its_own() -> None:
    """Issue 8, item 1: ids derived from the record alone collided across workspaces."""
    record = message("w1")
    cause = Envelope.wrap(
        record,
        event_id=UUID(int=99),
        stream_id="4801:5731",
        workspace_id=None,
        occurred_at=AT,
        correlation_id=UUID(int=99),
        causation_id=None,
        actor=Actor(kind="meta"),
    )
    ids: list[UUID] = []
    for workspace in (UUID(int=1), UUID(int=2)):
        thread = thread_id(workspace, "4801", "5731")
        payloads = decide(record, ThreadState(thread_id=thread))
        envelopes = conversation_envelopes(
            cause, payloads, thread, workspace, Actor(kind="customer")
        )
        again = conversation_envelopes(cause, payloads, thread, workspace, Actor(kind="customer"))
        assert [e.event_id for e in envelopes] == [e.event_id for e in again]
        ids.extend(e.event_id for e in envelopes)
    assert len(set(ids)) == 4
