"""Reads of the read models, for the HTTP side (the only tables it may read)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from psycopg.rows import dict_row
from psycopg.sql import SQL, Composed, Identifier
from psycopg_pool import AsyncConnectionPool

from projections.naming import named

# Column lists shared by several reads (``{s}`` is the schema; aliases as in the reads).
MEMBER_FIELDS = (
    "m.member_id, m.name, m.role, m.capacity, m.active, m.status, m.status_changed_at,"
    " m.desktop_notifications, m.sound_notifications,"
    " ARRAY(SELECT gm.group_id FROM {s}.group_members gm JOIN {s}.groups g USING (group_id)"
    " WHERE gm.member_id = m.member_id AND g.deleted_at IS NULL"
    " ORDER BY gm.added_at, gm.group_id) AS group_ids"
)
GROUP_MEMBER_IDS = (
    "ARRAY(SELECT gm.member_id FROM {s}.group_members gm WHERE gm.group_id = g.group_id"
    " ORDER BY gm.added_at, gm.member_id) AS member_ids"
)
CONVERSATION_FIELDS = (
    "c.*, a.group_id, a.assignee_id, a.state AS assignment_state, a.queued_at, a.assigned_at"
)
INBOX_FIELDS = (
    "c.*, a.group_id, g.name AS group_name, a.state AS assignment_state, a.assignee_id,"
    " a.queued_at, a.assigned_at"
)
# The order the assignment service serves a queue in (services/assignment/decide.py,
# GroupState.queued): longest-waiting first, then arrival in the queue.
SERVED_ORDER = "a.queued_at, a.queue_arrival NULLS LAST, a.conversation_id"


def change_channel(projections_schema: str) -> str:
    """The PostgreSQL channel the projector notifies when it adds to the changes feed (a
    digest: a channel is an identifier of at most 63 bytes, and schemas may be long)."""
    return "switchboard_changes_" + hashlib.sha256(projections_schema.encode()).hexdigest()[:20]


def token_hash(token: str) -> str:
    """Tokens are 256-bit random secrets, so a plain SHA-256 is enough to store them."""
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class Caller:
    member_id: UUID
    workspace_id: UUID
    role: str
    name: str
    # When the token the caller signed in with was issued: a browser session holds it, so a
    # new token (a rotation) ends the sessions the old one opened.
    credential_issued_at: datetime | None = None


class ReadModels:
    def __init__(self, pool: AsyncConnectionPool, schema: str) -> None:
        self.pool = pool
        self.schema = Identifier(schema)

    def _sql(self, statement: str) -> Composed:
        return SQL(statement).format(s=self.schema)

    async def _all(self, statement: str, params: tuple[Any, ...]) -> list[dict[str, Any]]:
        async with self.pool.connection() as connection:
            cursor = connection.cursor(row_factory=dict_row)
            await cursor.execute(self._sql(statement), params)
            return await cursor.fetchall()

    async def caller(self, token: str) -> Caller | None:
        rows = await self._all(
            "SELECT m.member_id, m.workspace_id, m.role, m.name,"
            " c.issued_at AS credential_issued_at FROM {s}.member_credentials c"
            " JOIN {s}.members m ON m.member_id = c.member_id"
            " AND m.workspace_id = c.workspace_id WHERE c.token_hash = %s AND m.active",
            (token_hash(token),),
        )
        return Caller(**rows[0]) if rows else None

    async def session_caller(
        self, workspace_id: UUID, member_id: UUID, credential_issued_at: datetime
    ) -> Caller | None:
        """The member a browser session names, while it is active and the token it signed in
        with is still its token."""
        rows = await self._all(
            "SELECT m.member_id, m.workspace_id, m.role, m.name,"
            " c.issued_at AS credential_issued_at FROM {s}.members m"
            " JOIN {s}.member_credentials c ON c.member_id = m.member_id"
            " AND c.workspace_id = m.workspace_id"
            " WHERE m.workspace_id = %s AND m.member_id = %s AND m.active AND c.issued_at = %s",
            (workspace_id, member_id, credential_issued_at),
        )
        return Caller(**rows[0]) if rows else None

    async def conversations_of_contact(
        self, workspace_id: UUID, contact_wa_id: str
    ) -> list[dict[str, Any]]:
        """The contact's conversations, oldest first, with who holds each. A contact is
        found by its WhatsApp id or by its business-scoped user id (BSUID)."""
        return await self._all(
            f"SELECT {CONVERSATION_FIELDS} FROM {{s}}.conversations c"
            " LEFT JOIN {s}.conversation_assignments a USING (conversation_id)"
            " WHERE c.workspace_id = %s AND (c.contact_wa_id = %s OR c.contact_user_id = %s)"
            " ORDER BY c.started_at, c.conversation_id",
            (workspace_id, contact_wa_id, contact_wa_id),
        )

    async def conversation(
        self, workspace_id: UUID, conversation_id: UUID
    ) -> dict[str, Any] | None:
        """The conversation's row with ``group_id``, ``assignee_id`` and ``assignment_state``
        (all None before any assignment decision)."""
        rows = await self._all(
            f"SELECT {CONVERSATION_FIELDS} FROM {{s}}.conversations c"
            " LEFT JOIN {s}.conversation_assignments a USING (conversation_id)"
            " WHERE c.workspace_id = %s AND c.conversation_id = %s",
            (workspace_id, conversation_id),
        )
        return rows[0] if rows else None

    async def assignment(self, workspace_id: UUID, conversation_id: UUID) -> dict[str, Any] | None:
        """Who holds the conversation (its ``conversation_assignments`` row), None if nobody
        decided yet. Known even before the conversation's own row (other topic)."""
        rows = await self._all(
            "SELECT conversation_id, workspace_id, group_id, state, assignee_id, rotation,"
            " claim_only, queued_at, assigned_at, updated_at FROM {s}.conversation_assignments"
            " WHERE workspace_id = %s AND conversation_id = %s",
            (workspace_id, conversation_id),
        )
        return rows[0] if rows else None

    async def inbox(self, workspace_id: UUID, member_id: UUID) -> dict[str, list[dict[str, Any]]]:
        """The member's open conversations (most recent activity first) and the open ones
        waiting in the queues of its groups (longest-waiting first)."""
        assigned = await self._all(
            f"SELECT {INBOX_FIELDS} FROM {{s}}.conversations c"
            " JOIN {s}.conversation_assignments a USING (conversation_id)"
            " LEFT JOIN {s}.groups g ON g.group_id = a.group_id"
            " WHERE a.workspace_id = %s AND a.state = 'assigned' AND a.assignee_id = %s"
            " AND c.status = 'open'"
            " ORDER BY c.last_activity_at DESC, c.conversation_id",
            (workspace_id, member_id),
        )
        queued = await self._all(
            f"SELECT {INBOX_FIELDS} FROM {{s}}.conversations c"
            " JOIN {s}.conversation_assignments a USING (conversation_id)"
            " JOIN {s}.groups g ON g.group_id = a.group_id AND g.deleted_at IS NULL"
            " JOIN {s}.group_members gm ON gm.group_id = a.group_id AND gm.member_id = %s"
            " WHERE a.workspace_id = %s AND a.state = 'queued' AND c.status = 'open'"
            f" ORDER BY {SERVED_ORDER}",
            (member_id, workspace_id),
        )
        return {"assigned": assigned, "queued": queued}

    async def open_conversations(self, workspace_id: UUID) -> list[dict[str, Any]]:
        """Every open conversation of the workspace, most recent activity first, with who
        holds it (an admin's "All")."""
        return await self._all(
            f"SELECT {INBOX_FIELDS}, m.name AS assignee_name FROM {{s}}.conversations c"
            " LEFT JOIN {s}.conversation_assignments a USING (conversation_id)"
            " LEFT JOIN {s}.groups g ON g.group_id = a.group_id"
            " LEFT JOIN {s}.members m ON m.member_id = a.assignee_id"
            " AND a.state = 'assigned'"
            " WHERE c.workspace_id = %s AND c.status = 'open'"
            " ORDER BY c.last_activity_at DESC, c.conversation_id",
            (workspace_id,),
        )

    async def summaries(
        self, workspace_id: UUID, member_id: UUID, conversation_ids: list[UUID]
    ) -> dict[UUID, dict[str, Any]]:
        """What an inbox shows of each conversation, for one member, by conversation id:

        ``last_message`` (text, type, author kind, time), ``last_customer_message_at`` (the
        customer-service window runs 24 h from it), ``unread`` (customer messages after the
        member's read marker), ``read_up_to``, ``deadline`` and ``deadline_cause`` (when the
        expiry service closes it), and ``unanswered_since`` (the customer's first message
        after the last reply of a member; None once answered).
        """
        if not conversation_ids:
            return {}
        rows = await self._all(
            "SELECT c.conversation_id, c.message_count,"
            " last.text AS last_message_text, last.message_type AS last_message_type,"
            " last.author_kind AS last_message_author, last.occurred_at AS last_message_at,"
            " customer.last_at AS last_customer_message_at,"
            " COALESCE(r.up_to, 0) AS read_up_to,"
            " GREATEST(c.message_count - COALESCE(r.up_to, 0), 0) AS unread,"
            " d.deadline, d.cause AS deadline_cause,"
            " (SELECT min(h.occurred_at) FROM {s}.conversation_history h"
            "  WHERE h.conversation_id = c.conversation_id AND h.kind = 'message'"
            "  AND h.author_kind = 'customer' AND h.occurred_at > COALESCE("
            "  (SELECT max(m.occurred_at) FROM {s}.conversation_history m"
            "   WHERE m.conversation_id = c.conversation_id AND m.kind = 'message'"
            "   AND m.author_kind = 'member'), '-infinity')) AS unanswered_since"
            " FROM {s}.conversations c"
            " LEFT JOIN LATERAL (SELECT h.text, h.message_type, h.author_kind, h.occurred_at"
            "  FROM {s}.conversation_history h"
            "  WHERE h.conversation_id = c.conversation_id AND h.kind = 'message'"
            "  ORDER BY h.occurred_at DESC, h.rank DESC, h.seq DESC, h.event_id DESC LIMIT 1)"
            "  last ON true"
            " LEFT JOIN LATERAL (SELECT max(h.occurred_at) AS last_at"
            "  FROM {s}.conversation_history h WHERE h.conversation_id = c.conversation_id"
            "  AND h.kind = 'message' AND h.author_kind = 'customer') customer ON true"
            " LEFT JOIN {s}.conversation_reads r"
            "  ON r.conversation_id = c.conversation_id AND r.member_id = %s"
            " LEFT JOIN {s}.conversation_deadlines d ON d.conversation_id = c.conversation_id"
            " WHERE c.workspace_id = %s AND c.conversation_id = ANY(%s)",
            (member_id, workspace_id, conversation_ids),
        )
        return {row.pop("conversation_id"): row for row in rows}

    async def queue(self, workspace_id: UUID, group_id: UUID | None) -> list[dict[str, Any]]:
        """Open conversations waiting in the group's queue (None: the workspace's queue), in
        the order they will be served."""
        return await self._all(
            "SELECT a.conversation_id, c.contact_wa_id, c.contact_name, a.queued_at,"
            " a.rotation, a.claim_only, c.last_activity_at"
            " FROM {s}.conversation_assignments a JOIN {s}.conversations c USING"
            " (conversation_id) WHERE a.workspace_id = %s AND a.group_id IS NOT DISTINCT FROM %s"
            " AND a.state = 'queued' AND c.status = 'open'"
            f" ORDER BY {SERVED_ORDER}",
            (workspace_id, group_id),
        )

    async def history(self, conversation_id: UUID) -> list[dict[str, Any]]:
        """The conversation's lines in order, groups and members shown by their names."""
        lines = await self._all(
            "SELECT row_number() OVER w AS position, event_id, kind, author_kind, author_id,"
            " author_name, message_id, wamid, message_type, text, reply_id, content, status,"
            " errors, occurred_at, refs, reply_to, forwarded, frequently_forwarded, context,"
            " referral, group_id, edited_at, previous, revoked_at"
            " FROM {s}.conversation_history WHERE conversation_id = %s"
            " WINDOW w AS (ORDER BY occurred_at, rank, seq, event_id) ORDER BY position",
            (conversation_id,),
        )
        mentioned = {ref for line in lines for ref in line["refs"] or ()}
        names = await self._names(conversation_id, mentioned) if mentioned else {}
        for line in lines:
            line["text"] = named(line["text"], line.pop("refs"), names)
        return lines

    async def _names(self, conversation_id: UUID, ids: set[str]) -> dict[str, str]:
        """Names of the groups and members ``ids`` names, in the conversation's workspace."""
        rows = await self._all(
            "WITH w AS (SELECT workspace_id FROM {s}.conversations WHERE conversation_id = %s)"
            " SELECT group_id::text AS id, name FROM {s}.groups"
            " WHERE workspace_id = (SELECT workspace_id FROM w) AND group_id::text = ANY(%s)"
            " UNION ALL SELECT member_id::text, name FROM {s}.members"
            " WHERE workspace_id = (SELECT workspace_id FROM w) AND member_id::text = ANY(%s)",
            (conversation_id, list(ids), list(ids)),
        )
        return {row["id"]: row["name"] for row in rows}

    async def line_count(self, conversation_id: UUID, *, author_kind: str) -> int:
        rows = await self._all(
            "SELECT count(*) AS n FROM {s}.conversation_history"
            " WHERE conversation_id = %s AND author_kind = %s",
            (conversation_id, author_kind),
        )
        return int(rows[0]["n"])

    async def message_status(self, conversation_id: UUID, message_id: UUID) -> str | None:
        rows = await self._all(
            "SELECT status FROM {s}.conversation_history"
            " WHERE conversation_id = %s AND message_id = %s",
            (conversation_id, message_id),
        )
        return str(rows[0]["status"]) if rows else None

    async def workspace(self, workspace_id: UUID) -> dict[str, Any] | None:
        rows = await self._all(
            "SELECT * FROM {s}.workspaces WHERE workspace_id = %s", (workspace_id,)
        )
        return rows[0] if rows else None

    async def command_outcome(self, command_id: UUID) -> dict[str, Any] | None:
        rows = await self._all(
            "SELECT * FROM {s}.command_outcomes WHERE command_id = %s", (command_id,)
        )
        return rows[0] if rows else None

    async def members(self, workspace_id: UUID) -> list[dict[str, Any]]:
        """Every member, deactivated ones included (``active``), by name."""
        return await self._all(
            f"SELECT {MEMBER_FIELDS} FROM {{s}}.members m WHERE m.workspace_id = %s"
            " ORDER BY m.name, m.member_id",
            (workspace_id,),
        )

    async def member(self, workspace_id: UUID, member_id: UUID) -> dict[str, Any] | None:
        rows = await self._all(
            f"SELECT {MEMBER_FIELDS} FROM {{s}}.members m"
            " WHERE m.workspace_id = %s AND m.member_id = %s",
            (workspace_id, member_id),
        )
        return rows[0] if rows else None

    async def member_group_ids(self, workspace_id: UUID, member_id: UUID) -> list[UUID]:
        """The member's groups, deleted ones left out, in the order it joined them."""
        rows = await self._all(
            "SELECT gm.group_id FROM {s}.group_members gm JOIN {s}.groups g USING (group_id)"
            " WHERE gm.workspace_id = %s AND gm.member_id = %s AND g.deleted_at IS NULL"
            " ORDER BY gm.added_at, gm.group_id",
            (workspace_id, member_id),
        )
        return [row["group_id"] for row in rows]

    async def workspace_of(
        self, *, member_id: UUID | None = None, group_id: UUID | None = None
    ) -> UUID | None:
        """The workspace a member or a group belongs to (for the operator's commands, which
        name one without a workspace)."""
        rows = await self._all(
            "SELECT workspace_id FROM {s}.members WHERE member_id = %s"
            " UNION ALL SELECT workspace_id FROM {s}.groups WHERE group_id = %s",
            (member_id, group_id),
        )
        return rows[0]["workspace_id"] if rows else None

    async def is_group_member(self, group_id: UUID, member_id: UUID) -> bool:
        rows = await self._all(
            "SELECT 1 FROM {s}.group_members WHERE group_id = %s AND member_id = %s",
            (group_id, member_id),
        )
        return bool(rows)

    async def group(self, workspace_id: UUID, group_id: UUID) -> dict[str, Any] | None:
        """The group, deleted or not (``deleted_at``), with its members in joining order."""
        rows = await self._all(
            f"SELECT g.group_id, g.name, g.created_at, g.deleted_at, {GROUP_MEMBER_IDS}"
            " FROM {s}.groups g WHERE g.workspace_id = %s AND g.group_id = %s",
            (workspace_id, group_id),
        )
        return rows[0] if rows else None

    async def roster(self, workspace_id: UUID, group_id: UUID) -> list[dict[str, Any]]:
        """The group's members in the order they joined, with their load (open conversations
        assigned to them in any group) and when the group last gave them one."""
        return await self._all(
            "SELECT m.member_id, m.name, m.role, m.status, m.active, m.capacity,"
            " (SELECT count(*) FROM {s}.conversation_assignments a"
            "  LEFT JOIN {s}.conversations c USING (conversation_id)"
            "  WHERE a.assignee_id = m.member_id AND a.state = 'assigned'"
            "  AND c.status IS DISTINCT FROM 'closed') AS load,"
            " m.desktop_notifications, m.sound_notifications,"
            " (SELECT l.assigned_at FROM {s}.group_last_assignments l"
            "  WHERE l.group_id = gm.group_id AND l.member_id = m.member_id) AS last_assigned_at"
            " FROM {s}.group_members gm JOIN {s}.members m USING (member_id)"
            " WHERE gm.workspace_id = %s AND gm.group_id = %s"
            " ORDER BY gm.added_at, gm.member_id",
            (workspace_id, group_id),
        )

    async def changes_since(
        self, workspace_id: UUID, after_seq: int, limit: int
    ) -> list[dict[str, Any]]:
        """The workspace's changes after ``after_seq``, in order: seq, workspace_id,
        conversation_id, group_id, member_id, kind (the event type), occurred_at, caused_by
        (the member whose own action it was, if any)."""
        return await self._all(
            "SELECT seq, workspace_id, conversation_id, group_id, member_id, kind, occurred_at,"
            " caused_by FROM {s}.changes WHERE workspace_id = %s AND seq > %s"
            " ORDER BY seq LIMIT %s",
            (workspace_id, after_seq, limit),
        )

    async def last_change_seq(self, workspace_id: UUID) -> int:
        """Where a new follower of the feed starts (0: nothing yet)."""
        rows = await self._all(
            "SELECT COALESCE(max(seq), 0) AS seq FROM {s}.changes WHERE workspace_id = %s",
            (workspace_id,),
        )
        return int(rows[0]["seq"])

    async def member_ids(self, workspace_id: UUID) -> list[UUID]:
        rows = await self._all(
            "SELECT member_id FROM {s}.members WHERE workspace_id = %s AND active", (workspace_id,)
        )
        return [row["member_id"] for row in rows]

    async def groups(self, workspace_id: UUID) -> list[dict[str, Any]]:
        """The groups not deleted, by name, with their members in joining order."""
        return await self._all(
            f"SELECT g.group_id, g.name, g.created_at, {GROUP_MEMBER_IDS} FROM {{s}}.groups g"
            " WHERE g.workspace_id = %s AND g.deleted_at IS NULL ORDER BY g.name, g.group_id",
            (workspace_id,),
        )

    async def canned_responses(self, workspace_id: UUID) -> list[dict[str, Any]]:
        """The workspace's canned responses not deleted, by shortcut."""
        return await self._all(
            "SELECT canned_response_id, shortcut, text, updated_at FROM {s}.canned_responses"
            " WHERE workspace_id = %s AND deleted_at IS NULL ORDER BY lower(shortcut)",
            (workspace_id,),
        )

    async def canned_response(
        self, workspace_id: UUID, canned_response_id: UUID
    ) -> dict[str, Any] | None:
        """One canned response of the workspace, deleted or not (None: not this one's)."""
        rows = await self._all(
            "SELECT canned_response_id, shortcut, text, updated_at, deleted_at"
            " FROM {s}.canned_responses WHERE workspace_id = %s AND canned_response_id = %s",
            (workspace_id, canned_response_id),
        )
        return rows[0] if rows else None

    async def flows(self, workspace_id: UUID) -> list[dict[str, Any]]:
        """Each flow at its latest version, and the numbers it is active on."""
        return await self._all(
            "SELECT DISTINCT ON (v.flow_id) v.flow_id, v.version AS latest_version, v.name,"
            " v.published_at, COALESCE((SELECT array_agg(a.phone_number_id ORDER BY"
            " a.phone_number_id) FROM {s}.active_flows a WHERE a.flow_id = v.flow_id),"
            " '{{}}') AS active_on FROM {s}.flow_versions v WHERE v.workspace_id = %s"
            " ORDER BY v.flow_id, v.version DESC",
            (workspace_id,),
        )

    async def flow_versions(self, workspace_id: UUID, flow_id: UUID) -> list[dict[str, Any]]:
        return await self._all(
            "SELECT version, name, definition, published_by, published_at FROM {s}.flow_versions"
            " WHERE workspace_id = %s AND flow_id = %s ORDER BY version",
            (workspace_id, flow_id),
        )

    async def numbers(self, workspace_id: UUID) -> list[dict[str, Any]]:
        """The workspace's business numbers: display form (from Meta's webhooks; None until
        a customer wrote), active flow and whether flows may hand off to agents."""
        return await self._all(
            "SELECT n.phone_number_id, n.display_phone_number, f.flow_id AS active_flow_id,"
            " n.agent_conversations FROM {s}.business_numbers n"
            " LEFT JOIN {s}.active_flows f USING (phone_number_id)"
            " WHERE n.workspace_id = %s ORDER BY n.phone_number_id",
            (workspace_id,),
        )

    async def every_number(self) -> list[dict[str, Any]]:
        """Every workspace's business numbers with the workspace's name (for the WhatsApp
        sandbox, which stands in for Meta and so serves them all)."""
        return await self._all(
            "SELECT n.phone_number_id, n.display_phone_number, w.name AS workspace_name"
            " FROM {s}.business_numbers n LEFT JOIN {s}.workspaces w USING (workspace_id)"
            " ORDER BY w.name, n.phone_number_id",
            (),
        )

    async def ping(self) -> None:
        await self._all("SELECT 1", ())
