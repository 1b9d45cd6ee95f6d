"""What every ``/api`` route answers, as typed models with examples (the OpenAPI document's
response schemas; the routes validate their answers against them).

Rows of the read models are documented field by field and may carry more fields as the read
models grow (``additionalProperties``): a client reads what it knows and ignores the rest.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from events.directory import AgentStatus, Role

WS = "0b9f4a34-0d2e-4c8e-9a4b-6f1f8c1e2d3a"
ANA = "6f1f8c1e-2d3a-4c8e-9a4b-0b9f4a340d2e"
ADMIN = "1d2c3b4a-5e6f-4b7f-8e9d-0a1b2c3d4e5f"
GROUP = "8a4e2b90-5c1d-4f3e-8a6b-9c0d1e2f3a4b"
CONVERSATION = "3f6c0d8e-5b0a-4c55-9a53-4f1c7f0b2a10"
FLOW = "c0ffee00-1234-4abc-8def-0123456789ab"
COMMAND = "5d0c7a9e-8f61-4b0a-b2e4-7e9c1a3d5f20"
MESSAGE = "9e8d7c6b-5a49-4382-9170-6f5e4d3c2b1a"
NOW = "2026-03-02T10:15:00Z"


def _examples(*examples: dict[str, Any]) -> ConfigDict:
    return ConfigDict(extra="allow", json_schema_extra={"examples": list(examples)})


# --- members ---------------------------------------------------------------------------


MEMBER_EXAMPLE = {
    "member_id": ANA,
    "name": "Ana",
    "role": "agent",
    "capacity": 5,
    "active": True,
    "status": "available",
    "status_changed_at": NOW,
    "desktop_notifications": True,
    "sound_notifications": False,
    "group_ids": [GROUP],
}


class Member(BaseModel):
    """A member of the workspace (never its token: only a hash is kept, and not here)."""

    model_config = _examples(MEMBER_EXAMPLE)

    member_id: UUID
    name: str
    role: Role
    capacity: int
    active: bool = Field(description="false once deactivated (its token no longer works)")
    status: AgentStatus
    status_changed_at: datetime | None
    desktop_notifications: bool
    sound_notifications: bool
    group_ids: list[UUID] = Field(description="its groups (deleted ones left out), joined first")


class Members(BaseModel):
    model_config = _examples({"members": [MEMBER_EXAMPLE]})

    members: list[Member] = Field(description="every member, deactivated ones included, by name")


class MemberCreated(BaseModel):
    """The new member and its token, shown this once (201); 202 when the directory had not
    decided within the wait (``detail`` says so; the token works once it accepts)."""

    model_config = _examples(
        {
            "command_id": COMMAND,
            "member_id": ANA,
            "token": "hV3q0Xl2m1...",
            "name": "Ana",
            "role": "agent",
            "capacity": 5,
        }
    )

    command_id: UUID
    member_id: UUID
    token: str = Field(description="the member's bearer token; only its hash is kept")
    name: str
    role: Role
    capacity: int
    detail: str | None = Field(default=None, description="on 202: not decided yet")


class TokenRotated(BaseModel):
    """The member's new token, shown this once; the previous one no longer works (200).
    202: not decided within the wait (``detail``); the new token works once it is."""

    model_config = _examples({"command_id": COMMAND, "member_id": ANA, "token": "q8Zr1..."})

    command_id: UUID
    member_id: UUID
    token: str
    detail: str | None = Field(default=None, description="on 202: not decided yet")


class MemberChanged(BaseModel):
    model_config = _examples(
        {"command_id": COMMAND, "member_id": ANA, "name": "Ana M.", "role": "agent", "capacity": 7}
    )

    command_id: UUID
    member_id: UUID
    name: str
    role: Role
    capacity: int


class MemberDeactivated(BaseModel):
    model_config = _examples({"command_id": COMMAND, "member_id": ANA})

    command_id: UUID
    member_id: UUID


class StatusSet(BaseModel):
    """``command_id`` is absent when the member already had that status."""

    model_config = _examples({"command_id": COMMAND, "status": "available"})

    command_id: UUID | None = None
    status: AgentStatus


class NotificationsSet(BaseModel):
    model_config = _examples({"command_id": COMMAND, "desktop": True, "sound": False})

    command_id: UUID
    desktop: bool
    sound: bool


# --- groups ----------------------------------------------------------------------------


GROUP_EXAMPLE = {"group_id": GROUP, "name": "Ventas", "created_at": NOW, "member_ids": [ANA]}


class Group(BaseModel):
    model_config = _examples({**GROUP_EXAMPLE, "deleted_at": None})

    group_id: UUID
    name: str
    created_at: datetime
    deleted_at: datetime | None = None
    member_ids: list[UUID] = Field(description="its members, first joined first")


class Groups(BaseModel):
    model_config = _examples({"groups": [GROUP_EXAMPLE]})

    groups: list[Group] = Field(description="the groups not deleted, by name")


class GroupCreated(BaseModel):
    model_config = _examples({"command_id": COMMAND, "group_id": GROUP, "name": "Ventas"})

    command_id: UUID
    group_id: UUID
    name: str


class GroupRenamed(GroupCreated):
    pass


class GroupDeleted(BaseModel):
    model_config = _examples({"command_id": COMMAND, "group_id": GROUP})

    command_id: UUID
    group_id: UUID


class GroupMembership(BaseModel):
    """``command_id`` is absent when nothing had to change (already a member)."""

    model_config = _examples({"command_id": COMMAND, "group_id": GROUP, "member_id": ANA})

    command_id: UUID | None = None
    group_id: UUID
    member_id: UUID


ROSTER_EXAMPLE = {
    "member_id": ANA,
    "name": "Ana",
    "role": "agent",
    "status": "available",
    "active": True,
    "capacity": 5,
    "load": 2,
    "desktop_notifications": True,
    "sound_notifications": False,
}


class RosterMember(BaseModel):
    model_config = _examples(ROSTER_EXAMPLE)

    member_id: UUID
    name: str
    role: Role
    status: AgentStatus
    active: bool
    capacity: int
    load: int = Field(description="open conversations assigned to the member, in any group")
    desktop_notifications: bool
    sound_notifications: bool
    last_assigned_at: datetime | None = Field(
        default=None, description="when this group last gave the member a conversation"
    )


class Roster(BaseModel):
    model_config = _examples({"group": {**GROUP_EXAMPLE, "deleted_at": None}, "members": []})

    group: Group
    members: list[RosterMember]


QUEUED_EXAMPLE = {
    "conversation_id": CONVERSATION,
    "contact_wa_id": "573001112233",
    "contact_name": "Carla",
    "queued_at": NOW,
    "rotation": "no_owner",
    "claim_only": True,
    "last_activity_at": NOW,
}


class LastMessage(BaseModel):
    model_config = _examples({"text": "Hola", "type": "text", "author_kind": "customer", "at": NOW})

    text: str | None
    type: str | None = Field(description="Meta's message type (text, image, ...) or buttons/list")
    author_kind: str | None = Field(description="customer, bot or member")
    at: datetime


class ConversationFacts(BaseModel):
    """What the inbox says of a conversation for the caller, at the time of the answer."""

    last_message: LastMessage | None = Field(default=None, description="null before any")
    unread: int = Field(default=0, description="customer messages after my read marker")
    read_up_to: int = Field(default=0, description="my read marker (POST .../read)")
    last_customer_message_at: datetime | None = None
    service_window_open: bool = Field(
        default=False,
        description="WhatsApp's customer-service window: free text may be sent (24 h from the"
        " customer's last message)",
    )
    service_window_until: datetime | None = None
    closes_at: datetime | None = Field(
        default=None, description="when the expiry service closes it (null: not set yet)"
    )
    closes_because: str | None = Field(
        default=None, description="meta_24h (24 h after the start) or flow (its expiration)"
    )
    closes_in_seconds: int | None = None
    waiting_since: datetime | None = Field(
        default=None,
        description="queued: since it was queued; held: since the customer's first message"
        " no member answered (null once answered)",
    )


FACTS_EXAMPLE = {
    "last_message": {"text": "Hola", "type": "text", "author_kind": "customer", "at": NOW},
    "unread": 1,
    "read_up_to": 2,
    "last_customer_message_at": NOW,
    "service_window_open": True,
    "service_window_until": "2026-03-03T10:15:00Z",
    "closes_at": "2026-03-03T10:14:00Z",
    "closes_because": "meta_24h",
    "closes_in_seconds": 86340,
    "waiting_since": NOW,
}


class QueuedConversation(ConversationFacts):
    model_config = _examples({**QUEUED_EXAMPLE, **FACTS_EXAMPLE})

    conversation_id: UUID
    contact_wa_id: str
    contact_name: str | None
    queued_at: datetime | None
    rotation: str | None
    claim_only: bool
    last_activity_at: datetime


class GroupQueue(BaseModel):
    model_config = _examples({"group": {**GROUP_EXAMPLE, "deleted_at": None}, "queue": []})

    group: Group
    queue: list[QueuedConversation] = Field(description="longest-waiting first")


class WorkspaceQueue(BaseModel):
    model_config = _examples({"queue": [QUEUED_EXAMPLE]})

    queue: list[QueuedConversation] = Field(description="longest-waiting first")


# --- conversations ---------------------------------------------------------------------


CONVERSATION_EXAMPLE = {
    "conversation_id": CONVERSATION,
    "workspace_id": WS,
    "phone_number_id": "480112093385611",
    "display_phone_number": "15550001111",
    "contact_wa_id": "573001112233",
    "contact_name": "Carla",
    "status": "open",
    "started_at": NOW,
    "closed_at": None,
    "close_reason": None,
    "last_activity_at": NOW,
    "message_count": 3,
    "group_id": GROUP,
    "assignee_id": ANA,
    "assignment_state": "assigned",
}


class Conversation(ConversationFacts):
    """A conversation and who holds it (``group_id``, ``assignee_id`` and
    ``assignment_state`` are null before any assignment decision); one conversation's answer
    (and an inbox's items) also say what the inbox shows of it (``ConversationFacts``)."""

    model_config = _examples({**CONVERSATION_EXAMPLE, **FACTS_EXAMPLE})

    conversation_id: UUID
    workspace_id: UUID
    phone_number_id: str
    display_phone_number: str
    contact_wa_id: str
    contact_name: str | None
    status: str = Field(description="open or closed")
    started_at: datetime
    closed_at: datetime | None
    close_reason: str | None
    last_activity_at: datetime
    message_count: int
    group_id: UUID | None = None
    assignee_id: UUID | None = None
    assignment_state: str | None = Field(default=None, description="queued, assigned, released")
    queued_at: datetime | None = Field(default=None, description="when it began to wait")
    assigned_at: datetime | None = Field(default=None, description="when its member got it")
    contact_user_id: str | None = Field(
        default=None, description="the customer's business-scoped user id (BSUID), when sent"
    )
    contact_username: str | None = Field(default=None, description="the WhatsApp username")
    contact_country_code: str | None = None


class Conversations(BaseModel):
    model_config = _examples({"conversations": [CONVERSATION_EXAMPLE]})

    conversations: list[Conversation] = Field(description="oldest first")


class InboxConversation(Conversation):
    model_config = _examples(
        {
            **CONVERSATION_EXAMPLE,
            "group_name": "Ventas",
            "queued_at": NOW,
            "assigned_at": NOW,
        }
    )

    group_name: str | None = None
    assignee_name: str | None = Field(default=None, description="in ``all``: who holds it")


class Inbox(BaseModel):
    model_config = _examples({"assigned": [], "queued": [], "all": [], "workspace_queue": []})

    assigned: list[InboxConversation] = Field(description="mine, most recent activity first")
    queued: list[InboxConversation] = Field(
        description="waiting in my groups' queues, in the order they will be served"
    )
    all: list[InboxConversation] | None = Field(
        default=None, description="admins only: every open conversation, most recent first"
    )
    workspace_queue: list[QueuedConversation] | None = Field(
        default=None, description="admins only: the workspace's own queue"
    )


HISTORY_LINE_EXAMPLE = {
    "position": 1,
    "event_id": MESSAGE,
    "kind": "message",
    "author_kind": "customer",
    "author_id": "573001112233",
    "author_name": "Carla",
    "message_id": None,
    "wamid": "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA=",
    "message_type": "text",
    "text": "Hola",
    "reply_id": None,
    "content": {"text": {"body": "Hola"}},
    "status": None,
    "errors": None,
    "occurred_at": NOW,
    "reply_to": None,
    "forwarded": False,
    "frequently_forwarded": False,
    "context": None,
    "referral": None,
    "group_id": None,
    "edited_at": None,
    "previous": None,
    "revoked_at": None,
}


class HistoryLine(BaseModel):
    """One line: a message either way, a delivery status, a bot or assignment step, the
    close. ``content`` holds what the line's kind carries (the message as Meta sent it, an
    assignment decision's explanation, ...)."""

    model_config = _examples(HISTORY_LINE_EXAMPLE)

    position: int
    event_id: UUID
    kind: str = Field(description="message, status, system, assignment, flow, closed")
    author_kind: str = Field(
        description="customer, bot, member, business (its WhatsApp Business app), meta, system"
    )
    author_id: str | None
    author_name: str | None
    message_id: UUID | None
    wamid: str | None
    message_type: str | None
    text: str | None
    reply_id: str | None
    content: Any = None
    status: str | None
    errors: Any = None
    occurred_at: datetime
    reply_to: str | None = Field(default=None, description="the wamid the message answers")
    forwarded: bool = False
    frequently_forwarded: bool = False
    context: Any = Field(default=None, description="Meta's context object, as sent")
    referral: Any = Field(default=None, description="the click-to-WhatsApp ad it came from")
    group_id: str | None = Field(default=None, description="a group message's group")
    edited_at: datetime | None = None
    previous: Any = Field(default=None, description="earlier versions of an edited message")
    revoked_at: datetime | None = Field(
        default=None, description="when its author deleted it (text and content then null)"
    )


class History(BaseModel):
    model_config = _examples(
        {"conversation": CONVERSATION_EXAMPLE, "history": [HISTORY_LINE_EXAMPLE]}
    )

    conversation: Conversation
    history: list[HistoryLine] = Field(description="in order")


class ConversationMoved(BaseModel):
    """A claim's or a transfer's verdict: who holds the conversation now."""

    model_config = _examples(
        {"command_id": COMMAND, "conversation_id": CONVERSATION, "member_id": ANA}
    )

    command_id: UUID
    conversation_id: UUID | None = None
    member_id: UUID | None = None
    group_id: UUID | None = None


class ReplyQueued(BaseModel):
    model_config = _examples({"command_id": COMMAND, "message_id": MESSAGE})

    command_id: UUID
    message_id: UUID = Field(description="the reply's line in the history")


class CommandAccepted(BaseModel):
    """Put on Kafka; the history shows what became of it."""

    model_config = _examples({"command_id": COMMAND})

    command_id: UUID


class CommandPending(BaseModel):
    """202: the command is on Kafka but the deciding service's verdict did not show within
    the wait; it will, under ``command_id``."""

    model_config = _examples({"command_id": COMMAND, "detail": "accepted; not decided yet"})

    command_id: UUID
    detail: str


# --- flows -----------------------------------------------------------------------------


class FlowSummary(BaseModel):
    model_config = _examples(
        {
            "flow_id": FLOW,
            "latest_version": 2,
            "name": "Soporte",
            "published_at": NOW,
            "active_on": ["480112093385611"],
        }
    )

    flow_id: UUID
    latest_version: int
    name: str
    published_at: datetime
    active_on: list[str] = Field(description="business numbers whose new conversations run it")


class Flows(BaseModel):
    model_config = _examples({"flows": []})

    flows: list[FlowSummary]


class FlowVersion(BaseModel):
    model_config = _examples(
        {
            "version": 1,
            "name": "Soporte",
            "definition": {"name": "Soporte", "start": "bye", "blocks": []},
            "published_by": ADMIN,
            "published_at": NOW,
        }
    )

    version: int
    name: str
    definition: dict[str, Any]
    published_by: UUID
    published_at: datetime


class FlowVersions(BaseModel):
    model_config = _examples({"flow_id": FLOW, "versions": []})

    flow_id: UUID
    versions: list[FlowVersion] = Field(description="first version first")


class FlowPublished(BaseModel):
    model_config = _examples({"command_id": COMMAND, "flow_id": FLOW, "version": 2})

    command_id: UUID
    flow_id: UUID
    version: int


class ActiveFlowChosen(BaseModel):
    model_config = _examples(
        {"command_id": COMMAND, "phone_number_id": "480112093385611", "flow_id": FLOW}
    )

    command_id: UUID
    phone_number_id: str
    flow_id: UUID


# --- business numbers ------------------------------------------------------------------


NUMBER_EXAMPLE = {
    "phone_number_id": "480112093385611",
    "display_phone_number": "573001112233",
    "active_flow_id": FLOW,
    "agent_conversations": True,
}


class BusinessNumber(BaseModel):
    model_config = _examples(NUMBER_EXAMPLE)

    phone_number_id: str = Field(description="Meta's id of the business number")
    display_phone_number: str | None = Field(
        description="the number as customers see it, from Meta's webhooks (null until a"
        " customer wrote)"
    )
    active_flow_id: UUID | None = Field(description="the flow new conversations run")
    agent_conversations: bool = Field(
        description="whether its flows may hand conversations to agents (off: a connect-to-agent"
        " block follows its fallback)"
    )


class BusinessNumbers(BaseModel):
    model_config = _examples({"numbers": [NUMBER_EXAMPLE]})

    numbers: list[BusinessNumber] = Field(description="the workspace's numbers")


class AgentConversationsSwitched(BaseModel):
    model_config = _examples(
        {"command_id": COMMAND, "phone_number_id": "480112093385611", "agent_conversations": True}
    )

    command_id: UUID
    phone_number_id: str
    agent_conversations: bool


# --- the webhook -----------------------------------------------------------------------


class WebhookAccepted(BaseModel):
    model_config = _examples({"accepted": 2, "rejected": 0})

    accepted: int = Field(description="records Kafka acknowledged (one per message, status...)")
    rejected: int = Field(
        default=0,
        description="parts that are not what Meta documents, parked on whatsapp.rejected with"
        " the reason (the valid items of the delivery were accepted)",
    )


class Health(BaseModel):
    """What ``/healthz`` found: each dependency ``up`` or ``down: <why>`` (a 503 carries the
    same fields beside its ``detail``)."""

    model_config = _examples({"status": "ok", "database": "up", "kafka": "up"})

    status: Literal["ok", "unavailable"]
    database: str = Field(description="`up`, or `down: ` and why")
    kafka: str = Field(description="`up`, or `down: ` and why")


class Readiness(BaseModel):
    """What ``/readyz`` found: each part ``up``/``yes`` or ``down: ``/``no: `` and why (a 503
    carries the same fields beside its ``detail``)."""

    model_config = _examples(
        {"status": "ready", "kafka": "up", "database": "up", "caught_up": "yes"}
    )

    status: Literal["ready", "unavailable"]
    kafka: str = Field(description="`up`, or `down: ` and why")
    database: str = Field(description="`up`, or `down: ` and why")
    caught_up: str = Field(
        description="`yes`, or `no: ` and what is behind (the gateway consumes no topic, so"
        " only Kafka and PostgreSQL decide its readiness)"
    )


# --- the stream ------------------------------------------------------------------------


STREAM_CHANGE_EXAMPLE = {
    "seq": 42,
    "workspace_id": WS,
    "conversation_id": CONVERSATION,
    "group_id": GROUP,
    "member_id": ANA,
    "kind": "assignment.conversation_assigned",
    "occurred_at": NOW,
    "caused_by": None,
    "notify_desktop": True,
    "play_sound": True,
}


class StreamChange(BaseModel):
    """The ``data`` of one ``/api/stream`` event: what changed; read the details from the
    other routes. The first event (``ready``) carries ``member_id`` and ``after`` instead (and
    both hints false)."""

    model_config = _examples(STREAM_CHANGE_EXAMPLE)

    seq: int = Field(description="the event's id; send it back as Last-Event-ID to resume")
    workspace_id: UUID
    conversation_id: UUID | None
    group_id: UUID | None
    member_id: UUID | None
    kind: str = Field(description="the event type (also the SSE ``event`` field)")
    occurred_at: datetime
    caused_by: UUID | None = Field(
        description="the member whose own action this was, if any (never notified of it)"
    )
    notify_desktop: bool = Field(
        description="show a desktop notification (the member's setting and the kind of event;"
        " see the README's notification hints)"
    )
    play_sound: bool = Field(description="play the notification sound (likewise)")


NOTE = "3f2e1d0c-9b8a-4765-8432-10fedcba9876"
CANNED = "7c6b5a49-3827-4165-9e8d-c0b1a2938475"


class NoteAdded(BaseModel):
    """The note is in the conversation's history (members only; never sent)."""

    model_config = _examples({"command_id": COMMAND, "note_id": NOTE})

    command_id: UUID
    note_id: UUID


class CannedResponse(BaseModel):
    model_config = _examples(
        {
            "canned_response_id": CANNED,
            "shortcut": "hola",
            "text": "Hola {{contact.name}}, soy {{agent.name}}. ¿En qué te ayudo?",
        }
    )

    canned_response_id: UUID
    shortcut: str
    text: str = Field(description="as written, variables such as {{contact.name}} included")


class CannedResponseChanged(CannedResponse):
    command_id: UUID


class CannedResponseDeleted(BaseModel):
    model_config = _examples({"command_id": COMMAND, "canned_response_id": CANNED})

    command_id: UUID
    canned_response_id: UUID


class CannedResponses(BaseModel):
    model_config = _examples({"canned_responses": []})

    canned_responses: list[CannedResponse]


class FilledCannedResponse(CannedResponse):
    filled: str = Field(description="the text with its variables filled for this conversation")


class FilledCannedResponses(BaseModel):
    """What the reply box offers as the agent types ``/``: each response, filled."""

    model_config = _examples({"canned_responses": []})

    canned_responses: list[FilledCannedResponse]
