"""The payloads of earlier schema versions, as they were written, for the published contract.

The registry decodes an old record by lifting its payload with upcasters (``events/codec.py``)
to the current class, so the code keeps no class for what an old version looked like. Kafka
keeps every record (``retention.ms=-1``), so an analyst reading a topic from the beginning
meets those versions on the wire: ``docs/schemas/`` publishes a JSON Schema for each, and
these models are where they come from. Each is the shape the class had when it was the
current version (taken from the git history; the commit that replaced it is named), never
used to decode: :func:`earlier_payloads` and the registry's upcasters must name the same
versions (``tests/unit/test_published_schemas.py``).

When a payload gets a new version, copy its class here as it was (``schema_version`` the
old number), beside its upcaster in the registry, then ``switchboard schemas write``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from events.assignment import Candidate
from events.base import Id, Instant, JsonObject, Payload
from events.directory import Role
from events.flows import Rotation


class CustomerMessageReceivedV1(Payload):
    """A text message from the customer (text only; replaced by v2 before the first commit
    of this repository, as ``upcast_customer_message_v1`` documents)."""

    event_type = "conversation.customer_message_received"
    schema_version = 1

    conversation_id: Id
    wamid: str
    text: str
    sent_at: Instant


class CustomerMessageReceivedV2(Payload):
    """Every message type, before Meta's context, referral, group id, errors and the
    arrival time (replaced by v3 in 982929a)."""

    event_type = "conversation.customer_message_received"
    schema_version = 2

    conversation_id: Id
    wamid: str
    sequence: int
    kind: str
    text: str | None
    reply_id: str | None
    content: JsonObject
    context_wamid: str | None
    sent_at: Instant


class ConversationStartedV1(Payload):
    """Before the gateway's arrival time (replaced by v2 in 9792222)."""

    event_type = "conversation.started"
    schema_version = 1

    conversation_id: Id
    phone_number_id: str
    display_phone_number: str
    contact_wa_id: str
    contact_name: str | None
    started_at: Instant


class ConversationStartedV2(Payload):
    """With the arrival time, before the contact's user id, username and country code
    (replaced by v3 in 2dc69b8)."""

    event_type = "conversation.started"
    schema_version = 2

    conversation_id: Id
    phone_number_id: str
    display_phone_number: str
    contact_wa_id: str
    contact_name: str | None
    started_at: Instant
    received_at: Instant | None = None


class MessageStatusUpdatedV1(Payload):
    """Five statuses only (replaced by v2, any status Meta sends, in 982929a)."""

    event_type = "conversation.message_status_updated"
    schema_version = 1

    conversation_id: Id | None
    wamid: str
    status: Literal["sent", "delivered", "read", "failed", "deleted"]
    recipient_wa_id: str
    status_at: Instant
    errors: list[JsonObject]
    pricing: JsonObject | None


class WhatsAppMessageReceivedV1(Payload):
    """The customer named by ``contact_wa_id`` alone (replaced by v2 in 982929a)."""

    event_type = "whatsapp.message_received"
    schema_version = 1

    waba_id: str
    phone_number_id: str
    display_phone_number: str
    contact_wa_id: str
    contact_name: str | None
    message: JsonObject
    received_at: Instant


class CreateWorkspaceV1(Payload):
    """Before the agent-conversations switch (replaced by v2 in 226ce81)."""

    event_type = "directory.create_workspace"
    schema_version = 1

    workspace_id: Id
    name: str
    time_zone: str
    phone_number_id: str
    admin_member_id: Id
    admin_name: str
    admin_token_hash: str


class BusinessNumberConnectedV1(Payload):
    """Before the agent-conversations switch (replaced by v2 in 226ce81)."""

    event_type = "directory.business_number_connected"
    schema_version = 1

    workspace_id: Id
    phone_number_id: str


class MemberAddedV1(Payload):
    """With the member's token hash on ``directory.events`` (replaced by v2 in 5dc941e; the
    README says why those records' hashes are to be treated as exposed)."""

    event_type = "directory.member_added"
    schema_version = 1

    workspace_id: Id
    member_id: Id
    name: str
    role: Role
    capacity: int
    token_hash: str


class PublishFlowV1(Payload):
    """A flow in grammar v1: a chosen option's variable held its title (replaced by v2 in
    a6b25ec; the JSON shape is the same, the definition's meaning differs)."""

    event_type = "directory.publish_flow"
    schema_version = 1

    workspace_id: Id
    flow_id: Id
    definition: JsonObject
    published_by: Id


class FlowPublishedV1(Payload):
    """A flow version in grammar v1 (replaced by v2 in a6b25ec, as ``PublishFlowV1``)."""

    event_type = "directory.flow_published"
    schema_version = 1

    workspace_id: Id
    flow_id: Id
    version: int
    name: str
    definition: JsonObject
    published_by: Id


class FlowRunStartedV1(Payload):
    """Before the agent-conversations switch (replaced by v2 in 226ce81)."""

    event_type = "flow.run_started"
    schema_version = 1

    conversation_id: Id
    flow_id: Id | None
    version: int | None
    phone_number_id: str
    contact_wa_id: str
    contact_name: str | None
    time_zone: str
    conversation_started_at: Instant


class AnswerCapturedV1(Payload):
    """A chosen option's title in ``value``, its id in ``option_id`` (replaced by v2 in
    a6b25ec)."""

    event_type = "flow.answer_captured"
    schema_version = 1

    conversation_id: Id
    block_id: str
    variable: str
    value: str
    option_id: str | None
    captured_at: Instant


class DecisionV1(BaseModel):
    """An assignment decision's explanation before it named its directory view (b7d11d0)."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    rotation: Rotation | Literal["claim", "transfer"]
    rule: str
    candidates: list[Candidate]
    outcome: str


class ConversationQueuedV1(Payload):
    """One ``queued_at`` for when it was queued and when its wait began, no arrival number
    (replaced by v2 in b7d11d0)."""

    event_type = "assignment.conversation_queued"
    schema_version = 1

    conversation_id: Id
    workspace_id: Id
    group_id: Id | None
    rotation: Rotation
    claim_only: bool
    decision: DecisionV1
    queued_at: Instant


class ConversationAssignedV1(Payload):
    """Before the decision named its directory view (replaced by v2 in b7d11d0)."""

    event_type = "assignment.conversation_assigned"
    schema_version = 1

    conversation_id: Id
    workspace_id: Id
    group_id: Id | None
    member_id: Id
    member_name: str
    via: Literal["rotation", "specific", "claim", "transfer", "queue"]
    decision: DecisionV1
    assigned_at: Instant


class RecordDeadLetteredV1(Payload):
    """The value's bytes always present (replaced by v2, None for a tombstone, in 12ff839)."""

    event_type = "operations.record_dead_lettered"
    schema_version = 1

    consumer: str
    source_topic: str
    source_partition: int
    source_offset: int
    key: str | None
    value_base64: str
    reason: str


def earlier_payloads() -> tuple[type[Payload], ...]:
    """Every earlier version's payload class, one per (event type, version)."""
    return (
        CustomerMessageReceivedV1,
        CustomerMessageReceivedV2,
        ConversationStartedV1,
        ConversationStartedV2,
        MessageStatusUpdatedV1,
        WhatsAppMessageReceivedV1,
        CreateWorkspaceV1,
        BusinessNumberConnectedV1,
        MemberAddedV1,
        PublishFlowV1,
        FlowPublishedV1,
        FlowRunStartedV1,
        AnswerCapturedV1,
        ConversationQueuedV1,
        ConversationAssignedV1,
        RecordDeadLetteredV1,
    )
