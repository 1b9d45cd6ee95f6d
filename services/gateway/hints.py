"""Notification hints on ``/api/stream`` events: should this member's browser notify, ring?

Decided here, by the server, so every client behaves the same; the UI only obeys them. An
event hints at all only when it asks something of the member:

* ``assignment.conversation_assigned`` to the member (not by its own claim);
* ``conversation.customer_message_received`` in a conversation the member holds;
* ``assignment.conversation_queued`` in one of the member's groups (for an admin, also the
  workspace's queue);
* ``conversation.closed`` of a conversation the member holds, closed by someone or something
  else (it expired, an admin closed it, the flow ended it): a desktop notification, no sound.

Then ``notify_desktop`` follows the member's *Desktop notifications* setting and
``play_sound`` its *Play sound* setting. Nothing the member did itself hints (``caused_by``:
its claim, the transfer it asked for, its reply or close), nor anything else (a colleague's
status, delivery ticks, a conversation leaving a queue).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any
from uuid import UUID

ASSIGNED = "assignment.conversation_assigned"
QUEUED = "assignment.conversation_queued"
CUSTOMER_MESSAGE = "conversation.customer_message_received"
CLOSED = "conversation.closed"


@dataclass(frozen=True)
class Viewer:
    """The member a stream is for, as the hints need it."""

    member_id: UUID
    is_admin: bool
    groups: Collection[UUID]
    desktop: bool
    sound: bool


@dataclass(frozen=True)
class Hints:
    notify_desktop: bool = False
    play_sound: bool = False


NONE = Hints()


def hints(change: Mapping[str, Any], viewer: Viewer) -> Hints:
    """The hints of one change of the feed (its ``kind``, ``conversation_id``, ``group_id``,
    ``member_id`` and ``caused_by``) for ``viewer``."""
    if change.get("caused_by") == viewer.member_id:
        return NONE  # nobody is told of what they did themselves
    kind = change.get("kind")
    mine = change.get("member_id") == viewer.member_id
    asks = False
    ring = True
    if kind in (ASSIGNED, CUSTOMER_MESSAGE):
        asks = mine
    elif kind == QUEUED:
        group = change.get("group_id")
        asks = group in viewer.groups or (group is None and viewer.is_admin)
    elif kind == CLOSED:
        asks, ring = mine, False
    if not asks:
        return NONE
    return Hints(notify_desktop=viewer.desktop, play_sound=viewer.sound and ring)
