"""What an inbox item says about a conversation, for one member at one moment.

The read models give the facts (last message, the customer's last message, the read marker,
the expiry deadline, when it was queued); this adds what depends on *now*: whether the
WhatsApp customer-service window is still open (the dispatcher's own rule) and until when,
how long the conversation has left before it closes by itself, and since when it waits.
The JSON API and the agent suite both answer with these items, so they show the same truth.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any
from uuid import UUID

from projections.queries import ReadModels
from services.dispatcher.decide import CUSTOMER_SERVICE_WINDOW, window_open


def describe(row: dict[str, Any], summary: dict[str, Any] | None, now: datetime) -> dict[str, Any]:
    """``row`` (a conversation, with who holds it) with its inbox facts added."""
    facts = summary or {}
    last_customer: datetime | None = facts.get("last_customer_message_at")
    deadline: datetime | None = facts.get("deadline")
    queued = row.get("assignment_state") == "queued"
    return {
        **row,
        "last_message": {
            "text": facts.get("last_message_text"),
            "type": facts.get("last_message_type"),
            "author_kind": facts.get("last_message_author"),
            "at": facts.get("last_message_at"),
        }
        if facts.get("last_message_at") is not None
        else None,
        "unread": int(facts.get("unread") or 0),
        "read_up_to": int(facts.get("read_up_to") or 0),
        "last_customer_message_at": last_customer,
        "service_window_open": window_open(last_customer, now),
        "service_window_until": last_customer + CUSTOMER_SERVICE_WINDOW if last_customer else None,
        "closes_at": deadline,
        "closes_because": facts.get("deadline_cause"),
        "closes_in_seconds": max(0, int((deadline - now).total_seconds())) if deadline else None,
        # In a queue: since it was queued. Held: since the customer's first message that no
        # member has answered (None when answered).
        "waiting_since": row.get("queued_at") if queued else facts.get("unanswered_since"),
    }


async def described(
    models: ReadModels,
    workspace_id: UUID,
    member_id: UUID,
    lists: Iterable[list[dict[str, Any]]],
    now: datetime,
) -> None:
    """Describe, in place, every conversation of ``lists`` (one query for all of them)."""
    lists = list(lists)
    ids = list({row["conversation_id"] for rows in lists for row in rows})
    summaries = await models.summaries(workspace_id, member_id, ids)
    for rows in lists:
        rows[:] = [describe(row, summaries.get(row["conversation_id"]), now) for row in rows]
