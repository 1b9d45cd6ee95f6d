"""The assignment store: its event store plus its views, in the ``assignment`` schema.

Views of other services' events, written by the router in the unit of work of the records
that change them (so with their positions and event ids, ``runtime.work``):

* ``members`` (workspace, name, role, active, status, capacity), ``groups`` (name, deleted)
  and ``group_members`` (the roster, in the order members were added), from
  ``directory.events``;
* ``closed_conversations``, from ``conversation.events``.

Which groups an event nudges is not decided here: the rules (``services.assignment.nudges``)
say what they need to know, this recorder reads it from the views as they stood before the
event (``router_facts``), writes the event's view rows (``apply_to_views``), and the router
stages the nudges the rules return (``handlers.RouterHandler``).

Every method here is given the cursor of the unit of work it runs in: later records of a
batch see what earlier ones wrote.

The ``assignments`` view (which group holds each open conversation, queued or with whom) is
derived from the decisions *inside the transaction that stores them* (``_insert_events``,
which the unit of work calls as it stages them), like the expiry service's deadlines. The
same transaction guards what two replicas deciding for two groups could race on:

* a member's capacity: the member's row is locked (``FOR UPDATE``) and its open assigned
  conversations counted; a rotation that would take it over capacity rolls back with
  :class:`CapacityConflict`, and the decider decides again on what the other replica left;
* a conversation closing meanwhile: the router records a close and looks for its holder
  under the same per-conversation lock the decider takes to queue or assign it, so either
  the router sees the decision (and nudges the group to release it) or the decider sees the
  close (:class:`ClosedMeanwhile`, and decides again: declined).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID, uuid5

import orjson
from eventsourcing.persistence import StoredEvent
from eventsourcing.postgres import PostgresDatastore
from psycopg import Cursor
from psycopg.rows import DictRow
from psycopg.sql import SQL, Composed, Identifier

from events.assignment import (
    ConversationAssigned,
    ConversationQueued,
    ConversationReleased,
    GroupNudged,
    ViewPosition,
    group_key,
)
from events.base import Payload
from events.catalogue import DIRECTORY_EVENTS_TOPIC
from events.conversation import ConversationClosed
from events.directory import (
    AgentStatusChanged,
    GroupCreated,
    GroupDeleted,
    GroupMemberAdded,
    GroupMemberRemoved,
    GroupRenamed,
    MemberAdded,
    MemberDeactivated,
    MemberUpdated,
)
from events.envelope import Actor, Envelope
from runtime.store import StoreRecorder, StreamConflict
from services.assignment.facts import GroupFacts, Holding, MemberFacts
from services.assignment.nudges import (
    FactsWanted,
    Holder,
    RouterFacts,
    decide_nudges,
    facts_wanted,
)

ROUTER = Actor(kind="system", id="assignment-router")
# Nudge ids derive from their cause in a namespace of their own: other services derive ids
# from the same conversation events (``Envelope.caused``), and ids must stay unique.
NUDGE_NAMESPACE = UUID("a4e2b9d1-5c7f-4e38-9b06-1d8f3c2a7e55")
ROTATION_VIAS = ("rotation", "queue")

VIEW_TABLES = (
    """CREATE TABLE IF NOT EXISTS {s}.members (
        member_id uuid PRIMARY KEY, workspace_id uuid NOT NULL, name text NOT NULL,
        role text NOT NULL, active boolean NOT NULL, status text NOT NULL,
        capacity integer NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS {s}.groups (
        group_id uuid PRIMARY KEY, workspace_id uuid NOT NULL, name text NOT NULL,
        deleted boolean NOT NULL DEFAULT false)""",
    """CREATE TABLE IF NOT EXISTS {s}.group_members (
        group_id uuid NOT NULL, member_id uuid NOT NULL, added_at timestamptz NOT NULL,
        PRIMARY KEY (group_id, member_id))""",
    """CREATE INDEX IF NOT EXISTS group_members_member ON {s}.group_members (member_id)""",
    """CREATE TABLE IF NOT EXISTS {s}.closed_conversations (
        conversation_id uuid PRIMARY KEY, closed_at timestamptz NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS {s}.assignments (
        conversation_id uuid PRIMARY KEY, workspace_id uuid NOT NULL, group_id uuid NULL,
        state text NOT NULL, member_id uuid NULL, claim_only boolean NOT NULL)""",
    """CREATE INDEX IF NOT EXISTS assignments_member ON {s}.assignments (member_id)
        WHERE state = 'assigned'""",
    """CREATE INDEX IF NOT EXISTS assignments_group ON {s}.assignments (group_id)""",
    # The last directory event of each workspace the views applied: every decision records
    # it (Decision.directory_view), so its explanation says which directory it read.
    """CREATE TABLE IF NOT EXISTS {s}.directory_positions (
        workspace_id uuid PRIMARY KEY, topic text NOT NULL, partition integer NOT NULL,
        record_offset bigint NOT NULL)""",
)
# Open conversations assigned to a member, all groups together (closed ones excluded even
# before their group released them, so freed capacity counts at once).
LOAD = (
    "SELECT a.member_id, count(*) AS load FROM {s}.assignments a"
    " WHERE a.state = 'assigned' AND a.member_id = ANY(%s) AND NOT EXISTS"
    " (SELECT 1 FROM {s}.closed_conversations c WHERE c.conversation_id = a.conversation_id)"
    " GROUP BY a.member_id"
)
# Groups of a member with conversations the rotation could take out of the queue.
WAITING_GROUPS = (
    "SELECT DISTINCT gm.group_id FROM {s}.group_members gm JOIN {s}.assignments a"
    " ON a.group_id = gm.group_id AND a.state = 'queued' AND NOT a.claim_only"
    " WHERE gm.member_id = %s ORDER BY gm.group_id"
)
# Groups (NULL: the workspace queue) where a member holds open conversations, in one order
# (the nudges' ids are numbered in the order they are decided).
HOLDING_GROUPS = (
    "SELECT DISTINCT group_id FROM {s}.assignments WHERE member_id = %s AND state = 'assigned'"
    " ORDER BY group_id"
)


@dataclass(frozen=True)
class Facts:
    """What the views say for one decision, read in one snapshot."""

    groups: dict[UUID, GroupFacts]
    members: dict[UUID, MemberFacts]
    closed: frozenset[UUID]
    holding: Holding | None
    directory_view: ViewPosition | None


class CapacityConflict(StreamConflict):
    """A rotation would take a member over capacity (another replica assigned meanwhile)."""


class ClosedMeanwhile(StreamConflict):
    """The conversation closed while its decision was being made."""


class AssignmentRecorder(StoreRecorder):
    def __init__(self, datastore: PostgresDatastore) -> None:
        super().__init__(datastore)
        self.schema = Identifier(datastore.schema)
        self.sql_create_statements.extend(self._sql(statement) for statement in VIEW_TABLES)

    def _sql(self, statement: str) -> Composed:
        return SQL(statement).format(s=self.schema)

    # -- reading the views for a decision ------------------------------------------------

    def facts(
        self,
        cursor: Cursor[DictRow],
        workspace_id: UUID,
        group_ids: Iterable[UUID],
        member_ids: Iterable[UUID],
        conversations: Iterable[UUID],
        conversation: UUID | None,
    ) -> Facts:
        """Groups with their rosters, members with their loads, which conversations are
        closed, who holds ``conversation`` and how far the directory was read — as one
        snapshot."""
        groups_wanted = list(set(group_ids))
        cursor.execute(
            self._sql(
                "SELECT group_id, name, deleted FROM {s}.groups"
                " WHERE workspace_id = %s AND group_id = ANY(%s)"
            ),
            (workspace_id, groups_wanted),
        )
        found = {row["group_id"]: row for row in cursor.fetchall()}
        cursor.execute(
            self._sql(
                "SELECT group_id, member_id FROM {s}.group_members WHERE group_id = ANY(%s)"
                " ORDER BY group_id, added_at, member_id"
            ),
            (list(found),),
        )
        rosters: dict[UUID, list[UUID]] = {}
        for row in cursor.fetchall():
            rosters.setdefault(row["group_id"], []).append(row["member_id"])
        groups = {
            group_id: GroupFacts(
                group_id=group_id,
                name=found[group_id]["name"] if group_id in found else str(group_id),
                known=group_id in found,
                deleted=bool(found[group_id]["deleted"]) if group_id in found else False,
                roster=tuple(rosters.get(group_id, ())),
            )
            for group_id in groups_wanted
        }
        wanted = set(member_ids).union(*rosters.values())
        cursor.execute(
            self._sql(
                "SELECT member_id, name, role, active, status, capacity FROM {s}.members"
                " WHERE workspace_id = %s AND member_id = ANY(%s)"
            ),
            (workspace_id, list(wanted)),
        )
        rows = cursor.fetchall()
        cursor.execute(self._sql(LOAD), ([row["member_id"] for row in rows],))
        loads = {row["member_id"]: int(row["load"]) for row in cursor.fetchall()}
        members = {
            row["member_id"]: MemberFacts(
                member_id=row["member_id"],
                name=row["name"],
                role=row["role"],
                active=row["active"],
                status=row["status"],
                capacity=row["capacity"],
                load=loads.get(row["member_id"], 0),
            )
            for row in rows
        }
        cursor.execute(
            self._sql(
                "SELECT conversation_id FROM {s}.closed_conversations"
                " WHERE conversation_id = ANY(%s)"
            ),
            (list(set(conversations)),),
        )
        closed = frozenset(row["conversation_id"] for row in cursor.fetchall())
        holding = None
        if conversation is not None:
            cursor.execute(
                self._sql(
                    "SELECT a.group_id, a.state, a.member_id, g.name FROM {s}.assignments a"
                    " LEFT JOIN {s}.groups g ON g.group_id = a.group_id"
                    " WHERE a.conversation_id = %s"
                ),
                (conversation,),
            )
            held = cursor.fetchone()
            if held is not None:
                holding = Holding(
                    held["group_id"],
                    held["state"],
                    held["member_id"],
                    held["name"] or "another group",
                )
        cursor.execute(
            self._sql(
                "SELECT topic, partition, record_offset FROM {s}.directory_positions"
                " WHERE workspace_id = %s"
            ),
            (workspace_id,),
        )
        seen = cursor.fetchone()
        directory_view = (
            ViewPosition(
                topic=seen["topic"], partition=seen["partition"], offset=seen["record_offset"]
            )
            if seen is not None
            else None
        )
        return Facts(groups, members, closed, holding, directory_view)

    # -- the decisions' view and guards, inside the append's transaction ----------------

    def _insert_events(
        self, curs: Cursor[DictRow], stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> None:
        super()._insert_events(curs, stored_events, **kwargs)
        guarded: set[UUID] = set()
        for event in stored_events:
            if event.topic not in DECISION_TOPICS:
                continue
            payload = orjson.loads(event.state)["payload"]
            conversation = UUID(payload["conversation_id"])
            group_id = UUID(payload["group_id"]) if payload["group_id"] else None
            if event.topic == ConversationReleased.event_type:
                curs.execute(
                    self._sql(
                        "DELETE FROM {s}.assignments WHERE conversation_id = %s"
                        " AND group_id IS NOT DISTINCT FROM %s"
                    ),
                    (conversation, group_id),
                )
                continue
            self._lock_conversation(curs, conversation)
            curs.execute(
                self._sql("SELECT 1 FROM {s}.closed_conversations WHERE conversation_id = %s"),
                (conversation,),
            )
            if curs.fetchone() is not None:
                raise ClosedMeanwhile(str(conversation))
            assigned = event.topic == ConversationAssigned.event_type
            member_id = UUID(payload["member_id"]) if assigned else None
            curs.execute(
                self._sql(
                    "INSERT INTO {s}.assignments (conversation_id, workspace_id, group_id,"
                    " state, member_id, claim_only) VALUES (%s, %s, %s, %s, %s, %s)"
                    " ON CONFLICT (conversation_id) DO UPDATE SET group_id = EXCLUDED.group_id,"
                    " state = EXCLUDED.state, member_id = EXCLUDED.member_id,"
                    " claim_only = EXCLUDED.claim_only"
                ),
                (
                    conversation,
                    UUID(payload["workspace_id"]),
                    group_id,
                    "assigned" if assigned else "queued",
                    member_id,
                    bool(payload.get("claim_only", False)),
                ),
            )
            if assigned and payload["via"] in ROTATION_VIAS and member_id is not None:
                guarded.add(member_id)
        # Sorted, so two transactions lock the same members in the same order.
        for member_id in sorted(guarded):
            curs.execute(
                self._sql("SELECT capacity FROM {s}.members WHERE member_id = %s FOR UPDATE"),
                (member_id,),
            )
            row = curs.fetchone()
            curs.execute(self._sql(LOAD), ([member_id],))
            counted = curs.fetchone()
            load = int(counted["load"]) if counted is not None else 0
            if row is not None and load > int(row["capacity"]):
                raise CapacityConflict(f"member {member_id} would hold {load}/{row['capacity']}")

    def _lock_conversation(self, curs: Cursor[DictRow], conversation: UUID) -> None:
        curs.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
            (f"{self.datastore.schema}:conversation:{conversation}",),
        )

    # -- the router: views and nudges with the record's position -----------------------

    def route(
        self, cursor: Cursor[DictRow], envelope: Envelope, topic: str, partition: int, offset: int
    ) -> list[GroupNudged]:
        """Apply a directory or conversation event (read at ``topic``/``partition``/``offset``)
        to the views; the nudges it calls for (``nudges.decide_nudges``), for the router to
        stage."""
        event = envelope.payload
        # The rules' answers are read as the views stood before the event.
        facts = self._router_facts(cursor, facts_wanted(event))
        self._apply_to_views(cursor, event, envelope.occurred_at)
        self._advance_directory_view(cursor, envelope, topic, partition, offset)
        return decide_nudges(event, facts, at=envelope.occurred_at)

    def _advance_directory_view(
        self, curs: Cursor[DictRow], envelope: Envelope, topic: str, partition: int, offset: int
    ) -> None:
        """Record the directory event just applied as the workspace's directory position."""
        if type(envelope.payload) not in DIRECTORY_EVENTS_TOPIC.carries:
            return
        if envelope.workspace_id is None:
            return
        curs.execute(
            self._sql(
                "INSERT INTO {s}.directory_positions VALUES (%s, %s, %s, %s)"
                " ON CONFLICT (workspace_id) DO UPDATE SET topic = EXCLUDED.topic,"
                " partition = EXCLUDED.partition, record_offset = EXCLUDED.record_offset"
            ),
            (envelope.workspace_id, topic, partition, offset),
        )

    def _router_facts(self, curs: Cursor[DictRow], wanted: FactsWanted) -> RouterFacts:
        """The views' answers to the rules' questions about one event."""
        capacity = None
        if wanted.capacity_of is not None:
            row = self._one(
                curs, "SELECT capacity FROM {s}.members WHERE member_id = %s", wanted.capacity_of
            )
            capacity = int(row["capacity"]) if row is not None else None
        waiting_groups: tuple[UUID, ...] = ()
        if wanted.waiting_groups_of is not None:
            waiting_groups = tuple(self._column(curs, WAITING_GROUPS, wanted.waiting_groups_of))
        holding_groups: tuple[UUID | None, ...] = ()
        if wanted.holding_groups_of is not None:
            holding_groups = tuple(self._column(curs, HOLDING_GROUPS, wanted.holding_groups_of))
        group_waiting = False
        if wanted.waiting_in is not None:
            group_waiting = (
                self._one(
                    curs,
                    "SELECT 1 AS x FROM {s}.assignments WHERE group_id = %s AND state = 'queued'"
                    " AND NOT claim_only LIMIT 1",
                    wanted.waiting_in,
                )
                is not None
            )
        holder = None
        if wanted.holder_of is not None:
            holder = self._holder(curs, wanted.holder_of)
        return RouterFacts(capacity, waiting_groups, holding_groups, group_waiting, holder)

    def _holder(self, curs: Cursor[DictRow], conversation: UUID) -> Holder | None:
        """Who holds a conversation, read under the lock the decider takes to queue or
        assign it: either the router sees the decision, or the decider sees the close."""
        self._lock_conversation(curs, conversation)
        held = self._one(
            curs,
            "SELECT workspace_id, group_id, state, member_id FROM {s}.assignments"
            " WHERE conversation_id = %s",
            conversation,
        )
        if held is None:
            return None
        member_id = held["member_id"]
        waiting = self._column(curs, WAITING_GROUPS, member_id) if member_id is not None else []
        return Holder(held["workspace_id"], held["group_id"], member_id, tuple(waiting))

    def _apply_to_views(self, curs: Cursor[DictRow], event: Payload, at: datetime) -> None:
        """The view rows a directory or conversation event changes."""
        match event:
            case MemberAdded():
                self._execute(
                    curs,
                    "INSERT INTO {s}.members VALUES (%s, %s, %s, %s, true, 'offline', %s)"
                    " ON CONFLICT (member_id) DO NOTHING",
                    event.member_id,
                    event.workspace_id,
                    event.name,
                    event.role,
                    event.capacity,
                )
            case MemberUpdated():
                self._execute(
                    curs,
                    "UPDATE {s}.members SET name = %s, role = %s, capacity = %s"
                    " WHERE member_id = %s",
                    event.name,
                    event.role,
                    event.capacity,
                    event.member_id,
                )
            case MemberDeactivated():
                self._execute(
                    curs,
                    "UPDATE {s}.members SET active = false WHERE member_id = %s",
                    event.member_id,
                )
            case AgentStatusChanged():
                self._execute(
                    curs,
                    "UPDATE {s}.members SET status = %s WHERE member_id = %s",
                    event.status,
                    event.member_id,
                )
            case GroupCreated():
                self._execute(
                    curs,
                    "INSERT INTO {s}.groups VALUES (%s, %s, %s, false)"
                    " ON CONFLICT (group_id) DO NOTHING",
                    event.group_id,
                    event.workspace_id,
                    event.name,
                )
            case GroupRenamed():
                self._execute(
                    curs,
                    "UPDATE {s}.groups SET name = %s WHERE group_id = %s",
                    event.name,
                    event.group_id,
                )
            case GroupDeleted():
                self._execute(
                    curs, "UPDATE {s}.groups SET deleted = true WHERE group_id = %s", event.group_id
                )
            case GroupMemberAdded():
                self._execute(
                    curs,
                    "INSERT INTO {s}.group_members VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
                    event.group_id,
                    event.member_id,
                    at,
                )
            case GroupMemberRemoved():
                self._execute(
                    curs,
                    "DELETE FROM {s}.group_members WHERE group_id = %s AND member_id = %s",
                    event.group_id,
                    event.member_id,
                )
            case ConversationClosed():
                self._execute(
                    curs,
                    "INSERT INTO {s}.closed_conversations VALUES (%s, %s) ON CONFLICT DO NOTHING",
                    event.conversation_id,
                    event.closed_at,
                )
            case _:
                pass

    # -- statements -----------------------------------------------------------------------

    def _execute(self, curs: Cursor[DictRow], statement: str, *params: Any) -> None:
        curs.execute(self._sql(statement), params)

    def _one(self, curs: Cursor[DictRow], statement: str, *params: Any) -> DictRow | None:
        self._execute(curs, statement, *params)
        return curs.fetchone()

    def _column(self, curs: Cursor[DictRow], statement: str, *params: Any) -> list[Any]:
        self._execute(curs, statement, *params)
        return [next(iter(row.values())) for row in curs.fetchall()]


DECISION_TOPICS = frozenset(
    {
        ConversationQueued.event_type,
        ConversationAssigned.event_type,
        ConversationReleased.event_type,
    }
)


def nudge_envelopes(cause: Envelope, nudges: list[GroupNudged]) -> list[Envelope]:
    return [
        Envelope.wrap(
            nudge,
            event_id=uuid5(NUDGE_NAMESPACE, f"{cause.event_id}/{index}"),
            stream_id=group_key(nudge.workspace_id, nudge.group_id),
            workspace_id=nudge.workspace_id,
            occurred_at=cause.occurred_at,
            correlation_id=cause.correlation_id,
            causation_id=cause.event_id,
            actor=ROUTER,
        )
        for index, nudge in enumerate(nudges)
    ]
