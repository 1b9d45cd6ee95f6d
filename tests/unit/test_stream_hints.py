"""The notification hints of ``/api/stream`` events, and the presence rule (both pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest

from services.gateway.hints import Hints, Viewer, hints
from services.gateway.presence import SessionSeen, present

pytestmark = pytest.mark.unit
ME, COLLEAGUE = UUID(int=1), UUID(int=2)
MY_GROUP, OTHER_GROUP = UUID(int=10), UUID(int=11)
CONVERSATION = UUID(int=20)
LOUD = Hints(notify_desktop=True, play_sound=True)
QUIET = Hints()


def viewer(*, desktop: bool = True, sound: bool = True, admin: bool = False) -> Viewer:
    return Viewer(member_id=ME, is_admin=admin, groups={MY_GROUP}, desktop=desktop, sound=sound)


def change(kind: str, **fields: Any) -> dict[str, Any]:
    return {"kind": kind, "conversation_id": CONVERSATION, "group_id": None, "member_id": None,
            "caused_by": None, **fields}  # fmt: skip


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        # Assigned to me by the rotation: notify and ring.
        (change("assignment.conversation_assigned", group_id=MY_GROUP, member_id=ME), LOUD),
        # ... but not when I claimed it myself.
        (
            change(
                "assignment.conversation_assigned", group_id=MY_GROUP, member_id=ME, caused_by=ME
            ),
            QUIET,
        ),
        # A colleague's assignment is news, not a call to act.
        (change("assignment.conversation_assigned", group_id=MY_GROUP, member_id=COLLEAGUE), QUIET),
        # The customer wrote in a conversation I hold.
        (change("conversation.customer_message_received", member_id=ME), LOUD),
        (change("conversation.customer_message_received", member_id=COLLEAGUE), QUIET),
        # A conversation waits in my group's queue; another group's is none of my business.
        (change("assignment.conversation_queued", group_id=MY_GROUP), LOUD),
        (change("assignment.conversation_queued", group_id=OTHER_GROUP), QUIET),
        # The workspace's queue is the admins'.
        (change("assignment.conversation_queued", group_id=None), QUIET),
        # Mine closed by itself (expired) or by an admin: a notification, no sound.
        (change("conversation.closed", member_id=ME), Hints(notify_desktop=True)),
        (change("conversation.closed", member_id=ME, caused_by=ME), QUIET),
        # Everything else is a silent update.
        (change("assignment.conversation_released", group_id=MY_GROUP, member_id=ME), QUIET),
        (change("conversation.message_status_updated", member_id=ME), QUIET),
        (change("outbound.message_queued", member_id=ME), QUIET),
        (change("directory.agent_status_changed", conversation_id=None, member_id=ME), QUIET),
    ],
)
def test_what_asks_something_of_the_member_hints(event: dict[str, Any], expected: Hints) -> None:
    assert hints(event, viewer()) == expected


def test_an_admin_is_hinted_of_the_workspace_queue() -> None:
    queued = change("assignment.conversation_queued", group_id=None)
    assert hints(queued, viewer(admin=True)) == LOUD


def test_an_admin_is_not_hinted_of_groups_it_is_not_in() -> None:
    queued = change("assignment.conversation_queued", group_id=OTHER_GROUP)
    assert hints(queued, viewer(admin=True)) == QUIET


@pytest.mark.parametrize(("desktop", "sound"), [(True, False), (False, True), (False, False)])
def test_the_members_settings_decide_each_hint(desktop: bool, sound: bool) -> None:
    assigned = change("assignment.conversation_assigned", member_id=ME)
    assert hints(assigned, viewer(desktop=desktop, sound=sound)) == Hints(desktop, sound)


NOW = datetime(2027, 3, 1, 12, 0, tzinfo=UTC)
GRACE = timedelta(seconds=60)
STALE = timedelta(seconds=30)


def seen(ago: float, closed_ago: float | None = None) -> SessionSeen:
    closed = None if closed_ago is None else NOW - timedelta(seconds=closed_ago)
    return SessionSeen(NOW - timedelta(seconds=ago), closed)


@pytest.mark.parametrize(
    ("sessions", "expected"),
    [
        ([seen(5)], True),  # a live stream
        ([seen(70, closed_ago=59)], True),  # closed within the grace: a reload
        ([seen(70, closed_ago=61)], False),  # closed longer ago: gone
        ([seen(70, closed_ago=61), seen(1)], True),  # came back on another replica
        ([seen(29)], True),  # not seen for a while, but not yet presumed dead
        ([seen(80)], True),  # presumed dead 50 s ago (80 - 30): still within the grace
        ([seen(91)], False),  # presumed dead 61 s ago: its gateway died, it is gone
        ([], False),
    ],
)
def test_a_member_is_present_until_its_sessions_ended_a_grace_ago(
    sessions: list[SessionSeen], expected: bool
) -> None:
    assert present(sessions, NOW, grace=GRACE, stale_after=STALE) is expected


def test_no_grace_means_offline_as_soon_as_the_last_stream_ends() -> None:
    assert present([seen(1, closed_ago=0)], NOW, grace=timedelta(0), stale_after=STALE) is False
