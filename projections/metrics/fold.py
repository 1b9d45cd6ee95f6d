"""The service metrics fold: what each conversation contributes to each group's, agent's and
day's figures. Pure: no I/O, no clock; time comes from the events.

The projection reads five topics (conversations, hand-off requests, assignment decisions,
outbound messages, the directory) whose partitions are consumed independently, so one
conversation's facts may arrive in any order: a close before the assignment that preceded
it, a reply before the hand-off. The fold is therefore made order-free in two steps:

* :func:`apply` merges an event into a conversation's :class:`ConversationFacts`, keeping
  the *earliest* of each fact (the first hand-off, the first assignment, the first reply)
  and counting messages by the quarter hour they happened in. Any order of the same events
  gives the same facts.
* :func:`contributions` says what those facts add to which row (workspace, day in the
  workspace's time zone, group, member). The writer stores the difference between a
  conversation's contributions before and after each event, so the daily rows are always
  the sum of every conversation's current contributions, however the events arrived.

Each figure is dated by the moment it completes: a hand-off on the day it was requested,
a queue wait (hand-off → first assignment) on the day of the assignment, a first response
(first assignment → the first reply a member sent) on the day of the reply, a resolution
(hand-off → close) and the close's reason on the day of the close, messages on the day they
were sent. A conversation's figures count for the group it was first handed off to and the
member it was first assigned to (a later transfer does not move them); a member's reply
counts in the replying member's row.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from datetime import UTC, date, datetime, timedelta
from typing import Literal
from uuid import UUID
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict

from events.assignment import ConversationAssigned
from events.conversation import ConversationClosed, ConversationStarted, CustomerMessageReceived
from events.envelope import Envelope
from events.flows import HandOffRequested
from events.outbound import OutboundMessageQueued

# Every real time zone's offset from UTC is a whole number of quarter hours, so counting
# messages per UTC quarter hour is enough to put each in its local day, whatever the
# workspace's time zone turns out to be (it may arrive after the messages).
BUCKET = timedelta(minutes=15)

# The group of a row: a group's id, the workspace queue, or no hand-off at all (a
# conversation the bot alone served: its messages, its close by the flow or by expiry).
WORKSPACE_QUEUE = "workspace"
NOT_HANDED_OFF = "none"
NO_MEMBER = ""

CloseKind = Literal["agent", "admin", "flow_ended", "expired"]


class ConversationFacts(BaseModel):
    """What the metrics need of one conversation (stored as JSON, one row per conversation)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    conversation_id: UUID
    workspace_id: UUID | None = None
    handed_off_at: datetime | None = None
    # The group of the first hand-off (None with ``handed_off_at`` set: the workspace queue).
    group_id: UUID | None = None
    first_assigned_at: datetime | None = None
    member_id: UUID | None = None  # the first assignment's member
    first_reply_at: datetime | None = None  # the first message a member sent
    closed_at: datetime | None = None
    close_reason: CloseKind | None = None
    # (UTC quarter-hour start, count), sorted: the customer's messages and the bot's.
    messages_in: tuple[tuple[datetime, int], ...] = ()
    bot_messages_out: tuple[tuple[datetime, int], ...] = ()
    # (member, UTC quarter-hour start, count), sorted: the members' replies.
    messages_out: tuple[tuple[UUID, datetime, int], ...] = ()


def no_facts(conversation_id: UUID) -> ConversationFacts:
    return ConversationFacts(conversation_id=conversation_id)


def conversation_of(envelope: Envelope) -> UUID | None:
    """The conversation an event is about, if the metrics read it."""
    match envelope.payload:
        case (
            ConversationStarted(conversation_id=conversation_id)
            | CustomerMessageReceived(conversation_id=conversation_id)
            | ConversationClosed(conversation_id=conversation_id)
            | HandOffRequested(conversation_id=conversation_id)
            | ConversationAssigned(conversation_id=conversation_id)
            | OutboundMessageQueued(conversation_id=conversation_id)
        ):
            return conversation_id
        case _:
            return None


def apply(facts: ConversationFacts, envelope: Envelope) -> ConversationFacts:
    """``facts`` with ``envelope``'s event merged in (commutative: any order, same facts)."""
    if facts.workspace_id is None and envelope.workspace_id is not None:
        facts = facts.model_copy(update={"workspace_id": envelope.workspace_id})
    match envelope.payload:
        case HandOffRequested(requested_at=at, group_id=group_id, workspace_id=workspace_id):
            if facts.handed_off_at is None or _earlier(
                at, group_id, facts.handed_off_at, facts.group_id
            ):
                facts = facts.model_copy(
                    update={"handed_off_at": at, "group_id": group_id, "workspace_id": workspace_id}
                )
        case ConversationAssigned(assigned_at=at, member_id=member_id):
            if facts.first_assigned_at is None or _earlier(
                at, member_id, facts.first_assigned_at, facts.member_id
            ):
                facts = facts.model_copy(update={"first_assigned_at": at, "member_id": member_id})
        case OutboundMessageQueued(author="member", author_id=author_id, queued_at=at):
            author = _member(author_id)
            if author is not None:
                if facts.first_reply_at is None or at < facts.first_reply_at:
                    facts = facts.model_copy(update={"first_reply_at": at})
                facts = facts.model_copy(
                    update={"messages_out": _count_by(facts.messages_out, author, _bucket(at))}
                )
        case OutboundMessageQueued(queued_at=at):
            facts = facts.model_copy(
                update={"bot_messages_out": _count_at(facts.bot_messages_out, _bucket(at))}
            )
        case CustomerMessageReceived(sent_at=at):
            facts = facts.model_copy(
                update={"messages_in": _count_at(facts.messages_in, _bucket(at))}
            )
        case ConversationClosed(closed_at=at, reason=reason):
            # A conversation closes once; a second close (a replay written again) is the same.
            if facts.closed_at is None or _earlier(at, reason, facts.closed_at, facts.close_reason):
                facts = facts.model_copy(update={"closed_at": at, "close_reason": reason})
        case _:
            pass
    return facts


@dataclass(frozen=True)
class Figures:
    """The summable figures of one row: counts, and durations as a sum with its count."""

    handed_off: int = 0
    queue_waits: int = 0
    queue_wait_seconds: float = 0.0
    first_responses: int = 0
    first_response_seconds: float = 0.0
    resolutions: int = 0
    resolution_seconds: float = 0.0
    closed_by_agent: int = 0
    closed_by_admin: int = 0
    closed_by_flow: int = 0
    expired: int = 0
    messages_in: int = 0
    messages_out: int = 0
    bot_messages_out: int = 0

    def __add__(self, other: Figures) -> Figures:
        return Figures(*(getattr(self, f) + getattr(other, f) for f in FIGURE_NAMES))

    def __neg__(self) -> Figures:
        return Figures(*(-getattr(self, f) for f in FIGURE_NAMES))

    def is_zero(self) -> bool:
        return all(getattr(self, f) == 0 for f in FIGURE_NAMES)


FIGURE_NAMES: tuple[str, ...] = tuple(f.name for f in fields(Figures))


@dataclass(frozen=True, order=True)
class RowKey:
    """A row of the daily table: the workspace, its local day, the group, the member."""

    workspace_id: UUID
    day: date
    group: str  # a group id, WORKSPACE_QUEUE or NOT_HANDED_OFF
    member: str  # a member id, or NO_MEMBER


Rows = Mapping[RowKey, Figures]


def contributions(facts: ConversationFacts, time_zone: str) -> dict[RowKey, Figures]:
    """What ``facts`` add to the daily rows, days counted in ``time_zone``."""
    workspace = facts.workspace_id
    if workspace is None:
        return {}  # no event of it named its workspace yet: it counts once one does
    zone = zone_of(time_zone)
    if facts.handed_off_at is None:
        group = NOT_HANDED_OFF
    else:
        group = str(facts.group_id) if facts.group_id is not None else WORKSPACE_QUEUE
    holder = str(facts.member_id) if facts.member_id is not None else NO_MEMBER
    rows: dict[RowKey, Figures] = {}

    def add(at: datetime, figures: Figures, member: str = holder) -> None:
        key = RowKey(workspace, local_day(at, zone), group, member)
        rows[key] = rows.get(key, Figures()) + figures

    handed, assigned, replied = facts.handed_off_at, facts.first_assigned_at, facts.first_reply_at
    if handed is not None:
        add(handed, Figures(handed_off=1))
    if handed is not None and assigned is not None:
        add(assigned, Figures(queue_waits=1, queue_wait_seconds=_seconds(handed, assigned)))
    if assigned is not None and replied is not None:
        add(replied, Figures(first_responses=1, first_response_seconds=_seconds(assigned, replied)))
    if facts.closed_at is not None:
        closed = facts.closed_at
        add(closed, _closed(facts.close_reason))
        if handed is not None:
            add(closed, Figures(resolutions=1, resolution_seconds=_seconds(handed, closed)))
    for at, count in facts.messages_in:
        add(at, Figures(messages_in=count))
    for at, count in facts.bot_messages_out:
        add(at, Figures(bot_messages_out=count))
    for member, at, count in facts.messages_out:
        add(at, Figures(messages_out=count), str(member))
    return rows


def difference(before: Rows, after: Rows) -> dict[RowKey, Figures]:
    """What to add to the daily rows to go from ``before``'s contributions to ``after``'s."""
    delta: dict[RowKey, Figures] = {}
    for key in before.keys() | after.keys():
        change = after.get(key, Figures()) + -before.get(key, Figures())
        if not change.is_zero():
            delta[key] = change
    return delta


def total(contributions_of: Iterable[Rows]) -> dict[RowKey, Figures]:
    """The daily rows of several conversations together (the table a rebuild writes)."""
    rows: dict[RowKey, Figures] = {}
    for contribution in contributions_of:
        for key, figures in contribution.items():
            rows[key] = rows.get(key, Figures()) + figures
    return rows


def zone_of(time_zone: str) -> ZoneInfo:
    """The workspace's zone; UTC for a name this machine's zone database does not know (the
    directory checks names when a workspace is created, so only an older database misses)."""
    try:
        return ZoneInfo(time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def local_day(at: datetime, zone: ZoneInfo) -> date:
    return at.astimezone(zone).date()


def _closed(reason: CloseKind | None) -> Figures:
    match reason:
        case "agent":
            return Figures(closed_by_agent=1)
        case "admin":
            return Figures(closed_by_admin=1)
        case "flow_ended":
            return Figures(closed_by_flow=1)
        case "expired":
            return Figures(expired=1)
        case None:
            return Figures()


def _seconds(start: datetime, end: datetime) -> float:
    # A member may answer before the assignment is recorded (an admin replying to a queued
    # conversation): that response took no time, it did not take negative time.
    return max(0.0, (end - start).total_seconds())


def _bucket(at: datetime) -> datetime:
    utc = at.astimezone(UTC)
    return utc.replace(minute=utc.minute - utc.minute % 15, second=0, microsecond=0)


def _count_at(
    counts: tuple[tuple[datetime, int], ...], at: datetime
) -> tuple[tuple[datetime, int], ...]:
    """``counts`` with one more at ``at`` (kept sorted, so equal facts compare equal)."""
    merged = dict(counts)
    merged[at] = merged.get(at, 0) + 1
    return tuple(sorted(merged.items()))


def _count_by(
    counts: tuple[tuple[UUID, datetime, int], ...], member: UUID, at: datetime
) -> tuple[tuple[UUID, datetime, int], ...]:
    merged = {(who, when): n for who, when, n in counts}
    merged[(member, at)] = merged.get((member, at), 0) + 1
    return tuple(sorted((who, when, n) for (who, when), n in merged.items()))


def _member(author_id: str | None) -> UUID | None:
    if author_id is None:
        return None
    try:
        return UUID(author_id)
    except ValueError:
        return None


def _earlier(at: datetime, tie: object, than: datetime, than_tie: object) -> bool:
    """Whether (at, tie) comes first: equal times are broken by the id (or the reason), so
    the order of arrival never matters."""
    if at != than:
        return at < than
    return str(tie) < str(than_tie)
