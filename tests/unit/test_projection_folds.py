"""The read models' pure folds: conversation rows and history lines."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID

import pytest

from events.base import Payload
from events.conversation import (
    ConversationClosed,
    ConversationStarted,
    CustomerMessageReceived,
    MessageStatusUpdated,
)
from events.envelope import Actor, Envelope
from projections.conversations import apply_conversation, history_entry, later_status, line_status

pytestmark = pytest.mark.unit
CONVERSATION = UUID(int=10)
AT = datetime(2026, 11, 24, 12, tzinfo=UTC)


def wrapped(payload: Payload, n: int) -> Envelope:
    return Envelope.wrap(
        payload,
        event_id=UUID(int=n),
        stream_id=str(CONVERSATION),
        workspace_id=UUID(int=1),
        occurred_at=AT,
        correlation_id=UUID(int=n),
        causation_id=None,
        actor=Actor(kind="customer", id="5731"),
    )


def started() -> Envelope:
    return wrapped(
        ConversationStarted(
            conversation_id=CONVERSATION,
            phone_number_id="4801",
            display_phone_number="57300",
            contact_wa_id="5731",
            contact_name="Valentina",
            started_at=AT,
        ),
        1,
    )


def received(n: int) -> Envelope:
    return wrapped(
        CustomerMessageReceived(
            conversation_id=CONVERSATION,
            wamid=f"w{n}",
            sequence=1,
            kind="text",
            text=f"message {n}",
            reply_id=None,
            content={"body": f"message {n}"},
            context_wamid=None,
            sent_at=AT + timedelta(minutes=n),
        ),
        100 + n,
    )


def test_conversation_row_counts_messages_and_closes() -> None:
    row = apply_conversation(None, started())
    row = apply_conversation(row, received(1))
    row = apply_conversation(row, received(2))
    assert row is not None
    assert (row.status, row.message_count, row.contact_name) == ("open", 2, "Valentina")
    assert row.last_activity_at == AT + timedelta(minutes=2)
    closed = apply_conversation(
        row,
        wrapped(
            ConversationClosed(
                conversation_id=CONVERSATION, reason="expired", closed_at=AT + timedelta(hours=24)
            ),
            9,
        ),
    )
    assert closed is not None
    assert (closed.status, closed.close_reason) == ("closed", "expired")


def test_a_start_seen_twice_keeps_the_row() -> None:
    row = apply_conversation(apply_conversation(None, started()), received(1))
    assert apply_conversation(row, started()) == row


def test_history_lines_say_who_sent_what() -> None:
    row = apply_conversation(None, started())
    entry = history_entry(received(1), row)
    assert entry is not None
    assert (entry.kind, entry.author_kind, entry.author_name, entry.text) == (
        "message",
        "customer",
        "Valentina",
        "message 1",
    )
    status = history_entry(
        wrapped(
            MessageStatusUpdated(
                conversation_id=CONVERSATION,
                wamid="out",
                status="read",
                recipient_wa_id="5731",
                status_at=AT,
                errors=[],
                pricing=None,
            ),
            7,
        ),
        row,
    )
    assert status is not None
    assert (status.kind, status.status) == ("status", "read")
    assert history_entry(started(), row) is None


def test_statuses_only_move_forward() -> None:
    assert later_status(None, "sent") == "sent"
    assert later_status("read", "delivered") == "read"
    assert later_status("delivered", "read") == "read"
    assert later_status("read", "failed") == "failed"


def test_a_message_line_shows_metas_word_once_the_dispatcher_sent_it() -> None:
    assert line_status("queued", None) == "queued"
    assert line_status("sent", None) == "sent"
    assert line_status("sent", "read") == "read"
    assert line_status("failed", "delivered") == "failed"
    assert line_status("unknown", None) == "unknown"
