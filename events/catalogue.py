"""The topic catalogue: every Kafka topic, its key, partitions, retention and what it carries.

Topics are created from this list at start-up (``services.topics``). Event topics keep their
whole history (``retention.ms = -1``) so a conversation can be replayed and analytics can
subscribe from the beginning. A deployment may prefix every name (``SWITCHBOARD_TOPIC_PREFIX``),
which is how tests keep their topics apart.
"""

from __future__ import annotations

from dataclasses import dataclass

from events.assignment import (
    ASSIGNMENT_COMMANDS,
    ASSIGNMENT_EVENTS,
    ConversationAssigned,
    ConversationQueued,
    upcast_conversation_assigned_v1,
    upcast_conversation_queued_v1,
)
from events.base import Payload
from events.business import BUSINESS_EVENTS
from events.canned_responses import CANNED_RESPONSE_COMMANDS, CANNED_RESPONSE_EVENTS
from events.codec import Registry
from events.conversation import (
    CONVERSATION_COMMANDS,
    CONVERSATION_EVENTS,
    ConversationStarted,
    CustomerMessageReceived,
    MessageStatusUpdated,
    upcast_conversation_started_v1,
    upcast_conversation_started_v2,
    upcast_customer_message_v1,
    upcast_customer_message_v2,
    upcast_status_v1,
)
from events.directory import (
    CREDENTIAL_EVENTS,
    DIRECTORY_COMMANDS,
    DIRECTORY_EVENTS,
    BusinessNumberConnected,
    CreateWorkspace,
    MemberAdded,
    upcast_create_workspace_v1,
    upcast_member_added_v1,
    upcast_number_connected_v1,
)
from events.expiry import EXPIRY_EVENTS
from events.flows import (
    FLOW_DIRECTORY_COMMANDS,
    FLOW_DIRECTORY_EVENTS,
    FLOW_EVENTS,
    HAND_OFF_REQUESTS,
    AnswerCaptured,
    FlowPublished,
    FlowRunStarted,
    PublishFlow,
    upcast_answer_captured_v1,
    upcast_flow_published_v1,
    upcast_publish_flow_v1,
    upcast_run_started_v1,
)
from events.notes import NOTE_COMMANDS, NOTE_EVENTS
from events.operations import (
    DEAD_LETTER_EVENTS,
    InboundRecordUnrouted,
    RecordDeadLettered,
    upcast_record_dead_lettered_v1,
)
from events.outbound import OUTBOUND_EVENTS, OUTBOUND_REQUESTS
from events.reads import READ_EVENTS
from events.whatsapp import (
    RAW_RECORDS,
    REJECTED_RECORDS,
    WhatsAppMessageReceived,
    upcast_message_received_v1,
)

KEEP_FOREVER = -1


@dataclass(frozen=True)
class Topic:
    name: str
    key: str
    partitions: int
    carries: tuple[type[Payload], ...]
    description: str
    retention_ms: int = KEEP_FOREVER
    # Carries credentials (token hashes): only the services named in ``description`` read
    # it, and a cluster with authorization grants READ on it to their principals alone.
    restricted: bool = False

    def qualified(self, prefix: str) -> str:
        return f"{prefix}{self.name}"


WHATSAPP_INBOUND = Topic(
    name="whatsapp.inbound",
    key="'{phone_number_id}:{contact id}' (business number and customer: wa_id, else BSUID)",
    partitions=6,
    carries=RAW_RECORDS,
    description="Raw webhook items from Meta about one customer each: messages, statuses and"
    " the business app's echoes, as sent. (Records of other changes, keyed"
    " '{waba_id}:{field}', were written here before whatsapp.business existed.)",
)
WHATSAPP_BUSINESS = Topic(
    name="whatsapp.business",
    key="waba_id (the WhatsApp business account)",
    partitions=3,
    carries=BUSINESS_EVENTS,
    description="Typed webhook changes that are not a customer's message: marketing opt-outs,"
    " template reviews and quality, account and number updates, errors Meta reports.",
)
WHATSAPP_REJECTED = Topic(
    name="whatsapp.rejected",
    key="phone_number_id when known, else waba_id, else empty",
    partitions=1,
    carries=REJECTED_RECORDS,
    description="Parts of webhook deliveries that are not what Meta documents, kept whole with"
    " the reason; the valid items of the same delivery went on.",
)
WHATSAPP_UNROUTED = Topic(
    name="whatsapp.unrouted",
    key="phone_number_id",
    partitions=1,
    carries=(InboundRecordUnrouted,),
    description="Webhook records for business numbers that no workspace owns, kept whole.",
)
CONVERSATION_EVENTS_TOPIC = Topic(
    name="conversation.events",
    key="conversation id",
    partitions=6,
    carries=CONVERSATION_EVENTS,
    description="What happened in conversations: started, messages, statuses, closed.",
)
CONVERSATION_COMMANDS_TOPIC = Topic(
    name="conversation.commands",
    key="'{phone_number_id}:{contact id}' (same partitioning as whatsapp.inbound)",
    partitions=6,
    carries=CONVERSATION_COMMANDS + NOTE_COMMANDS,
    description="Requests to the inbound service: close a conversation, add a member's note.",
)
CONVERSATION_NOTES_TOPIC = Topic(
    name="conversation.notes",
    key="conversation id",
    partitions=6,
    carries=NOTE_EVENTS,
    description="Members' private notes in conversations (added, or refused with the reason)."
    " Read by the projector alone: nothing that talks to the customer receives a note.",
)
DIRECTORY_COMMANDS_TOPIC = Topic(
    name="directory.commands",
    key="workspace id",
    partitions=3,
    carries=DIRECTORY_COMMANDS + FLOW_DIRECTORY_COMMANDS + CANNED_RESPONSE_COMMANDS,
    description="Admin commands for workspaces, numbers, members and flows. Restricted:"
    " written by the gateway and the CLI, read by the directory alone (adding a member,"
    " creating a workspace and rotating a token carry the new token's hash).",
    restricted=True,
)
DIRECTORY_EVENTS_TOPIC = Topic(
    name="directory.events",
    key="workspace id",
    partitions=3,
    carries=DIRECTORY_EVENTS + FLOW_DIRECTORY_EVENTS + CANNED_RESPONSE_EVENTS,
    description="Workspaces, business numbers, members, published flows and canned responses"
    " as they change."
    " No credentials: analytics may read it.",
)
DIRECTORY_CREDENTIALS_TOPIC = Topic(
    name="directory.credentials",
    key="workspace id",
    partitions=3,
    carries=CREDENTIAL_EVENTS,
    description="Members' token hashes as the directory issues them (added, rotated, carried"
    " over). Restricted: read by the projector alone, which authenticates for the gateway.",
    restricted=True,
)
FLOW_EVENTS_TOPIC = Topic(
    name="flow.events",
    key="conversation id",
    partitions=6,
    carries=FLOW_EVENTS,
    description="What each conversation's flow run did: answers, branches and why, the end.",
)
HAND_OFF_REQUESTS_TOPIC = Topic(
    name="assignment.requests",
    key="group id ('default:{workspace id}' for the workspace's default group)",
    partitions=6,
    carries=HAND_OFF_REQUESTS + ASSIGNMENT_COMMANDS,
    description="Everything one group's assignment decides on, keyed by group: hand-offs from"
    " flows, agents' claims and transfers, and nudges when members or conversations change.",
)
ASSIGNMENT_EVENTS_TOPIC = Topic(
    name="assignment.events",
    key="conversation id",
    partitions=6,
    carries=ASSIGNMENT_EVENTS,
    description="Assignment decisions with their explanation (rule, every candidate, why each"
    " was skipped): queued, assigned, released, transferred, refused claims.",
)
OUTBOUND_MESSAGES_TOPIC = Topic(
    name="outbound.messages",
    key="conversation id",
    partitions=6,
    carries=OUTBOUND_REQUESTS,
    description="Messages to send to customers (from flows and agents), and explicit retries.",
)
OUTBOUND_EVENTS_TOPIC = Topic(
    name="outbound.events",
    key="conversation id",
    partitions=6,
    carries=OUTBOUND_EVENTS,
    description="What the dispatcher did with each message: attempted, sent, failed, refused.",
)
EXPIRY_EVENTS_TOPIC = Topic(
    name="expiry.events",
    key="conversation id",
    partitions=6,
    carries=EXPIRY_EVENTS,
    description="Each open conversation's deadline as it is set or cancelled, and expiries.",
)
CONVERSATION_READS_TOPIC = Topic(
    name="conversation.reads",
    key="conversation id",
    partitions=6,
    carries=READ_EVENTS,
    description="Members' read markers (the gateway records them as the agent suite shows"
    " messages): how far each member has read each conversation.",
)
DEAD_LETTERS = Topic(
    name="operations.dead_letters",
    key="the original record's key (a stored event's stream id; a deadline's conversation id)",
    partitions=1,
    carries=DEAD_LETTER_EVENTS,
    description="Records a consumer could not handle, stored events the relay could not"
    " publish and deadlines the expiry timer could not fire, each with the reason.",
)

TOPICS: tuple[Topic, ...] = (
    WHATSAPP_INBOUND,
    WHATSAPP_BUSINESS,
    WHATSAPP_REJECTED,
    WHATSAPP_UNROUTED,
    CONVERSATION_EVENTS_TOPIC,
    CONVERSATION_COMMANDS_TOPIC,
    CONVERSATION_NOTES_TOPIC,
    DIRECTORY_COMMANDS_TOPIC,
    DIRECTORY_EVENTS_TOPIC,
    DIRECTORY_CREDENTIALS_TOPIC,
    FLOW_EVENTS_TOPIC,
    HAND_OFF_REQUESTS_TOPIC,
    ASSIGNMENT_EVENTS_TOPIC,
    OUTBOUND_MESSAGES_TOPIC,
    OUTBOUND_EVENTS_TOPIC,
    EXPIRY_EVENTS_TOPIC,
    CONVERSATION_READS_TOPIC,
    DEAD_LETTERS,
)


def topic_of(event_type: str) -> Topic:
    """The one topic that carries an event type (the relay publishes each event there)."""
    for topic in TOPICS:
        if any(payload.event_type == event_type for payload in topic.carries):
            return topic
    raise LookupError(f"no topic carries {event_type!r}")


def build_registry() -> Registry:
    """Every payload class of the catalogue, with the upcasters of older versions."""
    registry = Registry(payload for topic in TOPICS for payload in topic.carries)
    registry.add_upcaster(CustomerMessageReceived.event_type, 1, upcast_customer_message_v1)
    registry.add_upcaster(CustomerMessageReceived.event_type, 2, upcast_customer_message_v2)
    registry.add_upcaster(CreateWorkspace.event_type, 1, upcast_create_workspace_v1)
    registry.add_upcaster(BusinessNumberConnected.event_type, 1, upcast_number_connected_v1)
    registry.add_upcaster(FlowRunStarted.event_type, 1, upcast_run_started_v1)
    registry.add_upcaster(MemberAdded.event_type, 1, upcast_member_added_v1)
    registry.add_upcaster(ConversationStarted.event_type, 1, upcast_conversation_started_v1)
    registry.add_upcaster(ConversationStarted.event_type, 2, upcast_conversation_started_v2)
    registry.add_upcaster(MessageStatusUpdated.event_type, 1, upcast_status_v1)
    registry.add_upcaster(WhatsAppMessageReceived.event_type, 1, upcast_message_received_v1)
    registry.add_upcaster(AnswerCaptured.event_type, 1, upcast_answer_captured_v1)
    registry.add_upcaster(FlowPublished.event_type, 1, upcast_flow_published_v1)
    registry.add_upcaster(PublishFlow.event_type, 1, upcast_publish_flow_v1)
    registry.add_upcaster(ConversationQueued.event_type, 1, upcast_conversation_queued_v1)
    registry.add_upcaster(ConversationAssigned.event_type, 1, upcast_conversation_assigned_v1)
    registry.add_upcaster(RecordDeadLettered.event_type, 1, upcast_record_dead_lettered_v1)
    return registry
