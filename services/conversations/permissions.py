"""Who may see a conversation, claim, transfer, reply to, close it, add a note to it or retry a
message (pure).

Each rule takes the member asking (:class:`Asker`), what the read models say of the
conversation (:class:`ConversationFacts`, None when the workspace has no such conversation)
and the request's own facts, and returns a verdict: :class:`Allowed`, or :class:`Refused` with
the HTTP status it means and the reason in words. The gateway reads the facts, asks the rule
and answers with the verdict; the rules never read anything themselves.

The checks come in one order, the same for every rule: a conversation the member may not see
does not exist for them (404, with no hint that it does); then a closed one refuses everything
(409); then who may act (403); then what the request names (409/422).

The deciding services check again what can change between the read models and their
decision (the assignment service refuses a claim someone else won, a transfer by a member
who no longer holds it): these rules answer at once what the read models already show.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal
from uuid import UUID

from events.conversation import CloseReason

# The HTTP meaning of a refusal: 400 the request contradicts itself, 403 not this member's
# to do, 404 not there (or not visible to them), 409 the conversation's state forbids it,
# 422 what the request names cannot take it.
RefusalStatus = Literal[400, 403, 404, 409, 422]
RETRYABLE = ("failed", "unknown")


@dataclass(frozen=True)
class Asker:
    """The member asking: an admin sees and acts on all of its workspace's conversations;
    an agent sees those of its groups (``groups``, read for agents only) and those assigned
    to it, and acts on those assigned to it."""

    member_id: UUID
    role: str
    groups: frozenset[UUID] = frozenset()

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


@dataclass(frozen=True)
class ConversationFacts:
    """A conversation as the read models show it."""

    conversation_id: UUID
    status: str  # open, closed
    close_reason: str | None
    group_id: UUID | None  # None: the workspace queue, or never handed off
    assignee_id: UUID | None
    assignment_state: str | None  # queued, assigned, released; None before any decision


@dataclass(frozen=True)
class TransferTarget:
    """What a transfer names (it must name exactly one) and what the read models say of it."""

    member_id: UUID | None
    group_id: UUID | None
    member_active: bool = False  # the member is in the workspace and active
    group_open: bool = False  # the group is in the workspace and not deleted


@dataclass(frozen=True)
class Allowed:
    pass


@dataclass(frozen=True)
class CloseAllowed(Allowed):
    reason: CloseReason  # how the history records who closed it


@dataclass(frozen=True)
class Refused:
    status: RefusalStatus
    reason: str


Verdict = Allowed | Refused


def may_see(who: Asker, conversation: ConversationFacts) -> bool:
    """Whether the member sees the conversation at all (lists leave it out if not)."""
    if who.is_admin or conversation.assignee_id == who.member_id:
        return True
    return conversation.group_id in who.groups


def sees_workspace_queue(who: Asker) -> bool:
    """The workspace queue (hand-offs with no group, deleted groups' queues) is the admins'."""
    return who.is_admin


def administer(who: Asker) -> Verdict:
    """Routes that change the workspace (members, groups, flows, numbers) and retries."""
    return Allowed() if who.is_admin else Refused(403, "this needs an admin's token")


def see(who: Asker, conversation: ConversationFacts | None, conversation_id: UUID) -> Verdict:
    found = _visible(who, conversation, conversation_id)
    return found if isinstance(found, Refused) else Allowed()


def add_note(who: Asker, conversation: ConversationFacts | None, conversation_id: UUID) -> Verdict:
    """A private note: any member who sees the conversation, open or closed (a note is for
    colleagues, and what happened after the close is worth writing down too)."""
    return see(who, conversation, conversation_id)


def claim(who: Asker, conversation: ConversationFacts | None, conversation_id: UUID) -> Verdict:
    """Anyone who sees a queued conversation may claim it (the assignment service decides
    whether a member outside the group may: only admins); the first claim wins."""
    if isinstance(found := _open(who, conversation, conversation_id), Refused):
        return found
    if found.assignment_state == "assigned":
        return Refused(409, "the conversation is already assigned")
    if found.assignment_state != "queued":
        return Refused(409, "the conversation is not waiting in a queue")
    return Allowed()


def transfer(
    who: Asker,
    conversation: ConversationFacts | None,
    conversation_id: UUID,
    target: TransferTarget,
) -> Verdict:
    """The assignee or an admin hands the conversation to an active member (not the one who
    has it) or to a group that exists."""
    if (target.member_id is None) == (target.group_id is None):
        return Refused(400, "send exactly one of member_id and group_id")
    if isinstance(found := _open(who, conversation, conversation_id), Refused):
        return found
    if not _holds_or_admin(who, found):
        return Refused(403, "only the conversation's assignee or an admin transfers it")
    if target.member_id is not None:
        if not target.member_active:
            return Refused(422, f"no active member {target.member_id} in this workspace")
        if target.member_id == found.assignee_id:
            return Refused(409, "the conversation is already assigned to that member")
    if target.group_id is not None and not target.group_open:
        return Refused(422, f"no group {target.group_id} in this workspace")
    return Allowed()


def reply(who: Asker, conversation: ConversationFacts | None, conversation_id: UUID) -> Verdict:
    """The assignee or an admin writes to the customer while the conversation is open."""
    if isinstance(found := _open(who, conversation, conversation_id), Refused):
        return found
    if not _holds_or_admin(who, found):
        return Refused(403, "only the conversation's assignee or an admin replies")
    return Allowed()


def close(
    who: Asker, conversation: ConversationFacts | None, conversation_id: UUID
) -> CloseAllowed | Refused:
    """The assignee closes it (reason ``agent``); an admin who does not hold it closes it
    too (reason ``admin``, so the history tells the two apart)."""
    if isinstance(found := _open(who, conversation, conversation_id), Refused):
        return found
    if found.assignee_id == who.member_id:
        return CloseAllowed(reason="agent")
    if who.is_admin:
        return CloseAllowed(reason="admin")
    return Refused(403, "only the conversation's assignee or an admin closes it")


def retry(
    who: Asker,
    conversation: ConversationFacts | None,
    conversation_id: UUID,
    message_id: UUID,
    message_status: str | None,
) -> Verdict:
    """Only an admin decides to send again a message that failed or whose outcome is
    unknown: WhatsApp has no idempotency key, so a second copy may reach the customer."""
    if isinstance(refused := administer(who), Refused):
        return refused
    if isinstance(found := _visible(who, conversation, conversation_id), Refused):
        return found
    if message_status is None:
        return Refused(404, f"no outbound message {message_id} in this conversation")
    if message_status not in RETRYABLE:
        return Refused(409, f"the message is {message_status}; only failed or unknown ones retry")
    return Allowed()


def _visible(
    who: Asker, conversation: ConversationFacts | None, conversation_id: UUID
) -> ConversationFacts | Refused:
    if conversation is None or not may_see(who, conversation):
        return Refused(404, f"no conversation {conversation_id} in this workspace")
    return conversation


def _open(
    who: Asker, conversation: ConversationFacts | None, conversation_id: UUID
) -> ConversationFacts | Refused:
    if isinstance(found := _visible(who, conversation, conversation_id), Refused):
        return found
    if found.status != "open":
        return Refused(409, f"the conversation is closed ({found.close_reason})")
    return found


def _holds_or_admin(who: Asker, conversation: ConversationFacts) -> bool:
    return who.is_admin or conversation.assignee_id == who.member_id
