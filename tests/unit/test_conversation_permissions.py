"""Who may see and act on a conversation: given the member asking, the conversation as the
read models show it and the request, then the verdict (and the HTTP status it means)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from functools import partial
from uuid import UUID

import pytest

from services.conversations import permissions
from services.conversations.permissions import (
    Allowed,
    Asker,
    CloseAllowed,
    ConversationFacts,
    Refused,
    TransferTarget,
    Verdict,
)

pytestmark = pytest.mark.unit

ADMIN = Asker(UUID(int=1), "admin")
SALES, SUPPORT = UUID(int=10), UUID(int=11)
HOLDER = Asker(UUID(int=2), "agent", frozenset({SALES}))
COLLEAGUE = Asker(UUID(int=3), "agent", frozenset({SALES}))
STRANGER = Asker(UUID(int=4), "agent", frozenset({SUPPORT}))
CONVERSATION = UUID(int=100)
ASSIGNED = ConversationFacts(
    conversation_id=CONVERSATION,
    status="open",
    close_reason=None,
    group_id=SALES,
    assignee_id=HOLDER.member_id,
    assignment_state="assigned",
)
QUEUED = replace(ASSIGNED, assignee_id=None, assignment_state="queued")
CLOSED = replace(ASSIGNED, status="closed", close_reason="expired")
NOT_FOUND = Refused(404, f"no conversation {CONVERSATION} in this workspace")

Rule = Callable[[Asker, ConversationFacts | None, UUID], Verdict]
TO_COLLEAGUE = TransferTarget(COLLEAGUE.member_id, None, member_active=True)
MESSAGE = UUID(int=200)
RULES: dict[str, Rule] = {
    "see": permissions.see,
    "claim": permissions.claim,
    "transfer": partial(permissions.transfer, target=TO_COLLEAGUE),
    "reply": permissions.reply,
    "close": permissions.close,
    "retry": partial(permissions.retry, message_id=MESSAGE, message_status="failed"),
}


# -- seeing ---------------------------------------------------------------------------------


def test_admins_see_every_conversation_agents_their_groups_and_their_own() -> None:
    elsewhere = replace(ASSIGNED, group_id=SUPPORT)
    assert permissions.may_see(ADMIN, elsewhere)
    assert permissions.may_see(HOLDER, elsewhere)  # assigned to them, whatever the group
    assert permissions.may_see(COLLEAGUE, ASSIGNED)  # a conversation of their group
    assert not permissions.may_see(COLLEAGUE, elsewhere)
    in_workspace_queue = replace(QUEUED, group_id=None)
    assert permissions.may_see(ADMIN, in_workspace_queue)
    assert not permissions.may_see(COLLEAGUE, in_workspace_queue)


def test_only_admins_see_the_workspace_queue() -> None:
    assert permissions.sees_workspace_queue(ADMIN)
    assert not permissions.sees_workspace_queue(HOLDER)


@pytest.mark.parametrize("rule", RULES, ids=list(RULES))
def test_a_conversation_not_there_or_not_visible_is_404_with_no_hint(rule: str) -> None:
    asker = ADMIN if rule == "retry" else STRANGER
    assert RULES[rule](asker, None, CONVERSATION) == NOT_FOUND
    if rule != "retry":
        assert RULES[rule](STRANGER, ASSIGNED, CONVERSATION) == NOT_FOUND


@pytest.mark.parametrize("rule", ["claim", "transfer", "reply", "close"])
def test_a_closed_conversation_refuses_every_action_saying_why(rule: str) -> None:
    assert RULES[rule](ADMIN, CLOSED, CONVERSATION) == Refused(
        409, "the conversation is closed (expired)"
    )


def test_a_closed_conversation_can_still_be_seen() -> None:
    assert permissions.see(COLLEAGUE, CLOSED, CONVERSATION) == Allowed()


# -- claiming -------------------------------------------------------------------------------


def test_a_queued_conversation_is_claimed_by_whoever_sees_it() -> None:
    assert permissions.claim(COLLEAGUE, QUEUED, CONVERSATION) == Allowed()
    assert permissions.claim(ADMIN, replace(QUEUED, group_id=None), CONVERSATION) == Allowed()


def test_a_claim_of_an_assigned_or_never_queued_conversation_is_a_conflict() -> None:
    assert permissions.claim(COLLEAGUE, ASSIGNED, CONVERSATION) == Refused(
        409, "the conversation is already assigned"
    )
    for state in (None, "released"):
        assert permissions.claim(ADMIN, replace(QUEUED, assignment_state=state), CONVERSATION) == (
            Refused(409, "the conversation is not waiting in a queue")
        )


# -- transferring ---------------------------------------------------------------------------


def test_the_assignee_or_an_admin_transfers() -> None:
    assert permissions.transfer(HOLDER, ASSIGNED, CONVERSATION, TO_COLLEAGUE) == Allowed()
    to_group = TransferTarget(None, SUPPORT, group_open=True)
    assert permissions.transfer(ADMIN, ASSIGNED, CONVERSATION, to_group) == Allowed()
    assert permissions.transfer(COLLEAGUE, ASSIGNED, CONVERSATION, to_group) == Refused(
        403, "only the conversation's assignee or an admin transfers it"
    )


@pytest.mark.parametrize(
    "target", [TransferTarget(None, None), TransferTarget(COLLEAGUE.member_id, SUPPORT)]
)
def test_a_transfer_names_exactly_one_target_before_anything_else(target: TransferTarget) -> None:
    # Even on a conversation the asker cannot see: the request contradicts itself.
    assert permissions.transfer(STRANGER, None, CONVERSATION, target) == Refused(
        400, "send exactly one of member_id and group_id"
    )


def test_a_transfer_to_someone_who_cannot_take_it_says_why() -> None:
    gone = TransferTarget(UUID(int=9), None, member_active=False)
    assert permissions.transfer(ADMIN, ASSIGNED, CONVERSATION, gone) == Refused(
        422, f"no active member {UUID(int=9)} in this workspace"
    )
    to_holder = TransferTarget(HOLDER.member_id, None, member_active=True)
    assert permissions.transfer(ADMIN, ASSIGNED, CONVERSATION, to_holder) == Refused(
        409, "the conversation is already assigned to that member"
    )
    deleted = TransferTarget(None, SUPPORT, group_open=False)
    assert permissions.transfer(HOLDER, ASSIGNED, CONVERSATION, deleted) == Refused(
        422, f"no group {SUPPORT} in this workspace"
    )


def test_who_may_transfer_is_checked_before_what_the_transfer_names() -> None:
    gone = TransferTarget(UUID(int=9), None, member_active=False)
    assert permissions.transfer(COLLEAGUE, ASSIGNED, CONVERSATION, gone) == Refused(
        403, "only the conversation's assignee or an admin transfers it"
    )


# -- replying and closing ---------------------------------------------------------------------


def test_the_assignee_or_an_admin_replies() -> None:
    assert permissions.reply(HOLDER, ASSIGNED, CONVERSATION) == Allowed()
    assert permissions.reply(ADMIN, QUEUED, CONVERSATION) == Allowed()
    assert permissions.reply(COLLEAGUE, ASSIGNED, CONVERSATION) == Refused(
        403, "only the conversation's assignee or an admin replies"
    )


def test_a_close_by_the_assignee_is_an_agents_by_another_admin_an_admins() -> None:
    assert permissions.close(HOLDER, ASSIGNED, CONVERSATION) == CloseAllowed(reason="agent")
    holding_admin = replace(ASSIGNED, assignee_id=ADMIN.member_id)
    assert permissions.close(ADMIN, holding_admin, CONVERSATION) == CloseAllowed(reason="agent")
    assert permissions.close(ADMIN, ASSIGNED, CONVERSATION) == CloseAllowed(reason="admin")
    assert permissions.close(COLLEAGUE, ASSIGNED, CONVERSATION) == Refused(
        403, "only the conversation's assignee or an admin closes it"
    )


# -- retrying and administering ---------------------------------------------------------------


def test_only_an_admin_retries_and_only_a_failed_or_unknown_message() -> None:
    def retry(who: Asker, status: str | None) -> Verdict:
        return permissions.retry(who, CLOSED, CONVERSATION, MESSAGE, status)

    assert retry(ADMIN, "failed") == Allowed()  # a closed conversation's message too
    assert retry(ADMIN, "unknown") == Allowed()
    assert retry(HOLDER, "failed") == Refused(403, "this needs an admin's token")
    assert retry(ADMIN, None) == Refused(404, f"no outbound message {MESSAGE} in this conversation")
    assert retry(ADMIN, "sent") == Refused(
        409, "the message is sent; only failed or unknown ones retry"
    )


def test_administering_the_workspace_is_for_admins() -> None:
    assert permissions.administer(ADMIN) == Allowed()
    assert permissions.administer(HOLDER) == Refused(403, "this needs an admin's token")
