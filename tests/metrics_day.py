"""A scripted day of conversations and the service metrics it must give, exactly.

Used by the fold's unit tests and by the integration test on the real broker and database.
The workspace is in Bogotá (UTC-5, no daylight saving), so a conversation that expires at
04:30 UTC on 3 March counts on 2 March, and one that expires at 18:00 UTC on 3 March on 3
March.

* C1 (Ventas): hand-off 15:01, assigned to Ana 15:04, Ana replies 15:06 and 15:07, closed by
  Ana 15:20; the customer wrote twice, the bot once.
* C2 (Ventas): hand-off 16:00, assigned to Beto 16:10, Beto replies 16:11, expires 04:30
  UTC the next day (23:30 in Bogotá, still 2 March).
* C3 (no hand-off): the bot answers, the flow ends it 17:02.
* C4 (Soporte): hand-off 18:00, nobody takes it, expires 18:00 UTC on 3 March.
* C5 (the workspace queue): hand-off 19:00, claimed by Ana 19:30, Ana replies 19:31, an
  admin closes it 19:40.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from events.assignment import Candidate, ConversationAssigned, Decision
from events.base import Payload
from events.catalogue import (
    ASSIGNMENT_EVENTS_TOPIC,
    CONVERSATION_EVENTS_TOPIC,
    DIRECTORY_EVENTS_TOPIC,
    HAND_OFF_REQUESTS_TOPIC,
    OUTBOUND_MESSAGES_TOPIC,
    Topic,
)
from events.conversation import ConversationClosed, ConversationStarted, CustomerMessageReceived
from events.directory import WorkspaceCreated
from events.envelope import Actor, Envelope
from events.flows import HandOffRequested
from events.outbound import OutboundMessageQueued

TIME_ZONE = "America/Bogota"
DAY = date(2027, 3, 2)
NEXT_DAY = date(2027, 3, 3)
NUMBER = "4801"


def at(hour: int, minute: int = 0, second: int = 0, *, day: int = 2) -> datetime:
    return datetime(2027, 3, day, hour, minute, second, tzinfo=UTC)


@dataclass(frozen=True)
class Scripted:
    """One event of the day: the topic its service's relay publishes it to, and its key."""

    topic: Topic
    key: str
    envelope: Envelope


class Day:
    """The script for one workspace (fresh ids each time, so tests never share rows)."""

    def __init__(self) -> None:
        self.workspace = uuid.uuid4()
        self.ana, self.beto = uuid.uuid4(), uuid.uuid4()
        self.ventas, self.soporte = uuid.uuid4(), uuid.uuid4()
        self.c1, self.c2, self.c3, self.c4, self.c5 = (uuid.uuid4() for _ in range(5))
        self.events: list[Scripted] = []
        self._script()

    # -- the script ------------------------------------------------------------------------

    def _script(self) -> None:
        self.directory(
            WorkspaceCreated(workspace_id=self.workspace, name="Acme", time_zone=TIME_ZONE)
        )
        # C1
        self.started(self.c1, at(15))
        self.customer(self.c1, 1, at(15))
        self.bot(self.c1, at(15, 0, 5))
        self.hand_off(self.c1, self.ventas, at(15, 1))
        self.assigned(self.c1, self.ventas, self.ana, at(15, 4))
        self.reply(self.c1, self.ana, at(15, 6))
        self.reply(self.c1, self.ana, at(15, 7))
        self.customer(self.c1, 2, at(15, 8))
        self.closed(self.c1, "agent", at(15, 20))
        # C2
        self.started(self.c2, at(16))
        self.customer(self.c2, 1, at(16))
        self.hand_off(self.c2, self.ventas, at(16))
        self.assigned(self.c2, self.ventas, self.beto, at(16, 10))
        self.reply(self.c2, self.beto, at(16, 11))
        self.closed(self.c2, "expired", at(4, 30, day=3))
        # C3
        self.started(self.c3, at(17))
        self.customer(self.c3, 1, at(17))
        self.bot(self.c3, at(17, 0, 2))
        self.closed(self.c3, "flow_ended", at(17, 2))
        # C4
        self.started(self.c4, at(18))
        self.customer(self.c4, 1, at(18))
        self.hand_off(self.c4, self.soporte, at(18))
        self.closed(self.c4, "expired", at(18, day=3))
        # C5
        self.started(self.c5, at(19))
        self.customer(self.c5, 1, at(19))
        self.hand_off(self.c5, None, at(19))
        self.assigned(self.c5, None, self.ana, at(19, 30), via="claim")
        self.reply(self.c5, self.ana, at(19, 31))
        self.closed(self.c5, "admin", at(19, 40))

    def expected(self) -> dict[tuple[date, str, str], dict[str, Any]]:
        """(day, group, member) → every figure that is not zero, as the projection gives it."""
        ventas, soporte, ana, beto = (
            str(self.ventas),
            str(self.soporte),
            str(self.ana),
            str(self.beto),
        )
        return {
            (DAY, ventas, ana): {
                "handed_off": 1,
                "queue_waits": 1,
                "queue_wait_seconds": 180.0,
                "first_responses": 1,
                "first_response_seconds": 120.0,
                "resolutions": 1,
                "resolution_seconds": 1140.0,
                "closed_by_agent": 1,
                "messages_in": 2,
                "messages_out": 2,
                "bot_messages_out": 1,
            },
            (DAY, ventas, beto): {
                "handed_off": 1,
                "queue_waits": 1,
                "queue_wait_seconds": 600.0,
                "first_responses": 1,
                "first_response_seconds": 60.0,
                "resolutions": 1,
                "resolution_seconds": 45000.0,  # 16:00 → 04:30 the next day (UTC)
                "expired": 1,
                "messages_in": 1,
                "messages_out": 1,
            },
            (DAY, "none", ""): {"closed_by_flow": 1, "messages_in": 1, "bot_messages_out": 1},
            (DAY, soporte, ""): {"handed_off": 1, "messages_in": 1},
            (NEXT_DAY, soporte, ""): {
                "resolutions": 1,
                "resolution_seconds": 86400.0,
                "expired": 1,
            },
            (DAY, "workspace", ana): {
                "handed_off": 1,
                "queue_waits": 1,
                "queue_wait_seconds": 1800.0,
                "first_responses": 1,
                "first_response_seconds": 60.0,
                "resolutions": 1,
                "resolution_seconds": 2400.0,
                "closed_by_admin": 1,
                "messages_in": 1,
                "messages_out": 1,
            },
        }

    # -- one event each ----------------------------------------------------------------------

    def _add(self, topic: Topic, key: str, payload: Payload, when: datetime, actor: Actor) -> None:
        self.events.append(
            Scripted(
                topic,
                key,
                Envelope.wrap(
                    payload,
                    event_id=uuid.uuid4(),
                    stream_id=key,
                    workspace_id=self.workspace,
                    occurred_at=when,
                    correlation_id=uuid.uuid4(),
                    causation_id=None,
                    actor=actor,
                ),
            )
        )

    def directory(self, payload: Payload) -> None:
        self._add(DIRECTORY_EVENTS_TOPIC, str(self.workspace), payload, at(0), Actor(kind="system"))

    def started(self, conversation: uuid.UUID, when: datetime) -> None:
        payload = ConversationStarted(
            conversation_id=conversation,
            phone_number_id=NUMBER,
            display_phone_number="57300",
            contact_wa_id=str(conversation.int % 10**10),
            contact_name="Customer",
            started_at=when,
        )
        self._add(
            CONVERSATION_EVENTS_TOPIC, str(conversation), payload, when, Actor(kind="customer")
        )

    def customer(self, conversation: uuid.UUID, sequence: int, when: datetime) -> None:
        payload = CustomerMessageReceived(
            conversation_id=conversation,
            wamid=f"wamid.{conversation}.{sequence}",
            sequence=sequence,
            kind="text",
            text="hola",
            reply_id=None,
            content={"body": "hola"},
            context_wamid=None,
            sent_at=when,
        )
        self._add(
            CONVERSATION_EVENTS_TOPIC, str(conversation), payload, when, Actor(kind="customer")
        )

    def _outbound(
        self, conversation: uuid.UUID, when: datetime, author: str, author_id: str | None
    ) -> None:
        payload = OutboundMessageQueued(
            message_id=uuid.uuid4(),
            conversation_id=conversation,
            sequence=1,
            phone_number_id=NUMBER,
            to="57300",
            kind="text",
            text="hola",
            options=[],
            list_button=None,
            template=None,
            author=author,  # type: ignore[arg-type]
            author_id=author_id,
            queued_at=when,
        )
        actor = Actor(kind="member", id=author_id) if author == "member" else Actor(kind="bot")
        self._add(OUTBOUND_MESSAGES_TOPIC, str(conversation), payload, when, actor)

    def bot(self, conversation: uuid.UUID, when: datetime) -> None:
        self._outbound(conversation, when, "bot", None)

    def reply(self, conversation: uuid.UUID, member: uuid.UUID, when: datetime) -> None:
        self._outbound(conversation, when, "member", str(member))

    def hand_off(self, conversation: uuid.UUID, group: uuid.UUID | None, when: datetime) -> None:
        payload = HandOffRequested(
            conversation_id=conversation,
            workspace_id=self.workspace,
            phone_number_id=NUMBER,
            contact_wa_id="57300",
            group_id=group,
            rotation="available",
            member_id=None,
            reason="the flow reached connect_to_agent",
            requested_at=when,
        )
        key = str(group) if group is not None else f"default:{self.workspace}"
        self._add(HAND_OFF_REQUESTS_TOPIC, key, payload, when, Actor(kind="bot"))

    def assigned(
        self,
        conversation: uuid.UUID,
        group: uuid.UUID | None,
        member: uuid.UUID,
        when: datetime,
        *,
        via: str = "rotation",
    ) -> None:
        decision = Decision(
            rotation="claim" if via == "claim" else "available",
            rule="available members of the group, longest without a conversation first",
            candidates=[
                Candidate(
                    member_id=member,
                    name="Agent",
                    status="available",
                    active=True,
                    load=0,
                    capacity=3,
                    last_assigned_at=None,
                    skipped=None,
                    chosen=True,
                )
            ],
            outcome="assigned",
        )
        payload = ConversationAssigned(
            conversation_id=conversation,
            workspace_id=self.workspace,
            group_id=group,
            member_id=member,
            member_name="Agent",
            via=via,  # type: ignore[arg-type]
            decision=decision,
            assigned_at=when,
        )
        self._add(ASSIGNMENT_EVENTS_TOPIC, str(conversation), payload, when, Actor(kind="system"))

    def closed(self, conversation: uuid.UUID, reason: str, when: datetime) -> None:
        payload = ConversationClosed(
            conversation_id=conversation,
            reason=reason,  # type: ignore[arg-type]
            closed_at=when,
        )
        self._add(CONVERSATION_EVENTS_TOPIC, str(conversation), payload, when, Actor(kind="system"))
