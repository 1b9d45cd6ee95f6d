"""The read models' pure folds: conversation rows, history lines, assignments, directory."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID

import pytest

from events.assignment import (
    AssignmentCommandRejected,
    ConversationAssigned,
    ConversationQueued,
    ConversationReleased,
    ConversationTransferred,
    Decision,
    HandOffDeclined,
)
from events.base import Payload
from events.conversation import (
    BusinessMessageEchoed,
    ConversationClosed,
    ConversationStarted,
    CustomerMessageReceived,
    MessageEdited,
    MessageRevoked,
    MessageStatusUpdated,
)
from events.directory import (
    AgentStatusChanged,
    GroupDeleted,
    GroupMemberRemoved,
    WorkspaceCreated,
)
from events.envelope import Actor, Envelope
from events.flows import HandOffRequested
from projections.assignments import (
    AssignmentRow,
    apply_assignment,
    assignment_change,
    assignment_entry,
    assignment_outcome,
)
from projections.conversations import (
    LineEdit,
    LineRevoke,
    LineVersion,
    apply_conversation,
    edited_line,
    history_entry,
    later_status,
    line_change,
    line_status,
)
from projections.directory import (
    GroupDeletion,
    GroupMemberRemoval,
    MemberStatus,
    OutcomeRow,
    directory_rows,
)
from projections.naming import named

pytestmark = pytest.mark.unit
CONVERSATION = UUID(int=10)
AT = datetime(2026, 11, 24, 12, tzinfo=UTC)


def wrapped(payload: Payload, n: int) -> Envelope:
    return Envelope.wrap(
        payload,
        event_id=UUID(int=n),
        stream_id=str(CONVERSATION),
        workspace_id=UUID(int=1),
        occurred_at=AT,
        correlation_id=UUID(int=n),
        causation_id=None,
        actor=Actor(kind="customer", id="5731"),
    )


def started() -> Envelope:
    return wrapped(
        ConversationStarted(
            conversation_id=CONVERSATION,
            phone_number_id="4801",
            display_phone_number="57300",
            contact_wa_id="5731",
            contact_name="Valentina",
            started_at=AT,
        ),
        1,
    )


def received(n: int) -> Envelope:
    return wrapped(
        CustomerMessageReceived(
            conversation_id=CONVERSATION,
            wamid=f"w{n}",
            sequence=1,
            kind="text",
            text=f"message {n}",
            reply_id=None,
            content={"body": f"message {n}"},
            context_wamid=None,
            sent_at=AT + timedelta(minutes=n),
        ),
        100 + n,
    )


def test_conversation_row_counts_messages_and_closes() -> None:
    row = apply_conversation(None, started())
    row = apply_conversation(row, received(1))
    row = apply_conversation(row, received(2))
    assert row is not None
    assert (row.status, row.message_count, row.contact_name) == ("open", 2, "Valentina")
    assert row.last_activity_at == AT + timedelta(minutes=2)
    closed = apply_conversation(
        row,
        wrapped(
            ConversationClosed(
                conversation_id=CONVERSATION, reason="expired", closed_at=AT + timedelta(hours=24)
            ),
            9,
        ),
    )
    assert closed is not None
    assert (closed.status, closed.close_reason) == ("closed", "expired")


def test_a_start_seen_twice_keeps_the_row() -> None:
    row = apply_conversation(apply_conversation(None, started()), received(1))
    assert apply_conversation(row, started()) == row


def test_history_lines_say_who_sent_what() -> None:
    row = apply_conversation(None, started())
    entry = history_entry(received(1), row)
    assert entry is not None
    assert (entry.kind, entry.author_kind, entry.author_name, entry.text) == (
        "message",
        "customer",
        "Valentina",
        "message 1",
    )
    status = history_entry(
        wrapped(
            MessageStatusUpdated(
                conversation_id=CONVERSATION,
                wamid="out",
                status="read",
                recipient_wa_id="5731",
                status_at=AT,
                errors=[],
                pricing=None,
            ),
            7,
        ),
        row,
    )
    assert status is not None
    assert (status.kind, status.status) == ("status", "read")
    assert history_entry(started(), row) is None


def test_statuses_only_move_forward() -> None:
    assert later_status(None, "sent") == "sent"
    assert later_status("read", "delivered") == "read"
    assert later_status("delivered", "read") == "read"
    assert later_status("read", "failed") == "failed"
    assert later_status("read", "played") == "played"
    assert later_status("played", "read") == "played"
    assert later_status("delivered", "something_new") == "delivered"


def test_a_customer_line_shows_what_meta_said_around_the_message() -> None:
    """Issue 8, item 3: reply-to, forwarding, the ad, the group and errors were not shown."""
    row = apply_conversation(None, started())
    context = {"from": "57300", "id": "wamid.prev", "forwarded": True}
    referral = {"source_type": "ad", "source_id": "ADID"}
    errors = [{"code": 131051, "title": "Message type unknown"}]
    message = received(1).payload.model_copy(
        update={"context": context, "referral": referral, "group_id": "g.1", "errors": errors}
    )
    entry = history_entry(wrapped(message, 5), row)
    assert entry is not None
    assert (entry.reply_to, entry.forwarded, entry.frequently_forwarded) == (
        "wamid.prev",
        True,
        False,
    )
    assert (entry.context, entry.referral, entry.group_id, entry.errors) == (
        context,
        referral,
        "g.1",
        errors,
    )


def test_a_business_app_echo_is_a_line_of_the_business() -> None:
    row = apply_conversation(None, started())
    echoed = BusinessMessageEchoed(
        conversation_id=CONVERSATION,
        wamid="wamid.echo",
        kind="text",
        text="desde la app",
        content={"body": "desde la app"},
        context=None,
        sent_at=AT,
        received_at=AT,
    )
    entry = history_entry(wrapped(echoed, 6), row)
    assert entry is not None
    assert (entry.kind, entry.author_kind, entry.text, entry.wamid) == (
        "message",
        "business",
        "desde la app",
        "wamid.echo",
    )


def test_an_edit_replaces_the_text_and_keeps_the_earlier_versions() -> None:
    edit = MessageEdited(
        conversation_id=CONVERSATION,
        wamid="w1",
        edit_wamid="w1.e",
        author="customer",
        kind="text",
        text="second",
        content={"body": "second"},
        edited_at=AT,
    )
    change = line_change(wrapped(edit, 8))
    assert isinstance(change, LineEdit)
    first = LineVersion("text", "first", {"body": "first"}, None)
    once = edited_line(first, change)
    assert (once.text, once.content) == ("second", {"body": "second"})
    assert once.previous == [
        {
            "message_type": "text",
            "text": "first",
            "content": {"body": "first"},
            "replaced_at": AT.isoformat(),
        }
    ]
    twice = edited_line(once, change)
    assert twice.previous is not None
    assert [version["text"] for version in twice.previous] == ["first", "second"]
    revoke = MessageRevoked(
        conversation_id=CONVERSATION,
        wamid="w1",
        revoke_wamid="w1.r",
        author="customer",
        revoked_at=AT,
    )
    assert line_change(wrapped(revoke, 9)) == LineRevoke(CONVERSATION, "w1", AT)
    assert history_entry(wrapped(edit, 8), None) is None


def test_a_message_line_shows_metas_word_once_the_dispatcher_sent_it() -> None:
    assert line_status("queued", None) == "queued"
    assert line_status("sent", None) == "sent"
    assert line_status("sent", "read") == "read"
    assert line_status("failed", "delivered") == "failed"
    assert line_status("unknown", None) == "unknown"


# Assignment decisions: who holds the conversation, the history line, the verdicts.

GROUP_A, GROUP_B = UUID(int=20), UUID(int=21)
ANA, BETO = UUID(int=30), UUID(int=31)
CLAIM = UUID(int=77)


def decision(outcome: str, rotation: str = "available") -> Decision:
    return Decision(rotation=rotation, rule="the rule", candidates=[], outcome=outcome)  # type: ignore[arg-type]


def queued(group: UUID | None, at: datetime, n: int, claim_only: bool = False) -> Envelope:
    return wrapped(
        ConversationQueued(
            conversation_id=CONVERSATION,
            workspace_id=UUID(int=1),
            group_id=group,
            rotation="no_owner" if claim_only else "available",
            claim_only=claim_only,
            decision=decision("nobody available: queued"),
            queued_at=at,
            waiting_since=at,
            arrival=n,
        ),
        n,
    )


def assigned(
    group: UUID | None, member: UUID, at: datetime, n: int, via: str = "rotation"
) -> Envelope:
    return wrapped(
        ConversationAssigned(
            conversation_id=CONVERSATION,
            workspace_id=UUID(int=1),
            group_id=group,
            member_id=member,
            member_name="Ana",
            via=via,  # type: ignore[arg-type]
            decision=decision("assigned to Ana: longest without a conversation"),
            assigned_at=at,
        ),
        n,
    )


def released(group: UUID | None, member: UUID | None, reason: str, n: int) -> Envelope:
    return wrapped(
        ConversationReleased(
            conversation_id=CONVERSATION,
            workspace_id=UUID(int=1),
            group_id=group,
            member_id=member,
            reason=reason,  # type: ignore[arg-type]
            released_at=AT + timedelta(minutes=9),
        ),
        n,
    )


def caused_by(envelope: Envelope, command_id: UUID) -> Envelope:
    return envelope.model_copy(update={"causation_id": command_id})


def fold(*envelopes: Envelope) -> AssignmentRow | None:
    row: AssignmentRow | None = None
    for envelope in envelopes:
        row = apply_assignment(row, envelope)
    return row


def test_queued_then_assigned_keeps_when_it_started_waiting() -> None:
    row = fold(queued(GROUP_A, AT, 1), assigned(GROUP_A, ANA, AT + timedelta(minutes=5), 2))
    assert row is not None
    assert (row.state, row.group_id, row.assignee_id) == ("assigned", GROUP_A, ANA)
    assert (row.queued_at, row.assigned_at) == (AT, AT + timedelta(minutes=5))
    assert row.rotation == "available"


def test_a_release_of_what_the_row_holds_empties_it() -> None:
    row = fold(assigned(GROUP_A, ANA, AT, 1), released(GROUP_A, ANA, "closed", 2))
    assert row is not None
    assert (row.state, row.assignee_id, row.group_id) == ("released", None, GROUP_A)
    assert row.updated_at == AT + timedelta(minutes=9)


def test_a_transfer_to_another_group_ends_in_the_new_group_in_either_order() -> None:
    before = assigned(GROUP_A, ANA, AT, 1)
    out = released(GROUP_A, ANA, "transferred", 2)
    into = queued(GROUP_B, AT + timedelta(minutes=9), 3)
    for order in ((before, out, into), (before, into, out)):
        row = fold(*order)
        assert row is not None
        assert (row.state, row.group_id, row.assignee_id) == ("queued", GROUP_B, None)


def test_a_release_of_another_member_or_group_changes_nothing() -> None:
    row = fold(assigned(GROUP_A, BETO, AT, 1))
    assert apply_assignment(row, released(GROUP_A, ANA, "member_deactivated", 2)) == row
    assert apply_assignment(row, released(GROUP_B, BETO, "removed_from_group", 3)) == row
    assert apply_assignment(None, released(GROUP_A, ANA, "closed", 4)) is None


def test_the_workspace_queue_is_group_none() -> None:
    row = fold(queued(GROUP_A, AT, 1), released(GROUP_A, None, "group_deleted", 2))
    row = apply_assignment(row, queued(None, AT + timedelta(minutes=9), 3))
    assert row is not None
    assert (row.state, row.group_id) == ("queued", None)
    claim_only = fold(queued(None, AT, 4, claim_only=True))
    assert claim_only is not None
    assert claim_only.claim_only


def test_decision_lines_carry_the_decision() -> None:
    entry = assignment_entry(queued(GROUP_A, AT, 1))
    assert entry is not None
    assert (entry.kind, entry.author_kind, entry.text) == (
        "assignment",
        "system",
        "nobody available: queued",
    )
    assert entry.content == {
        "rotation": "available",
        "rule": "the rule",
        "candidates": [],
        "outcome": "nobody available: queued",
        "directory_view": None,
    }
    release = assignment_entry(released(GROUP_A, ANA, "member_deactivated", 2))
    assert release is not None
    # Names are shown when the history is read (by id: see the naming test below).
    assert release.text == f"Released from member {ANA}: its member was deactivated."
    assert release.refs == {str(GROUP_A): "group", str(ANA): "member"}
    assert release.content == {
        "reason": "member_deactivated",
        "group_id": str(GROUP_A),
        "member_id": str(ANA),
    }
    transfer = assignment_entry(
        wrapped(
            ConversationTransferred(
                conversation_id=CONVERSATION,
                workspace_id=UUID(int=1),
                from_group_id=GROUP_A,
                from_member_id=ANA,
                to_group_id=GROUP_B,
                to_member_id=None,
                requested_by=ANA,
                note="needs billing",
                transferred_at=AT,
            ),
            3,
        )
    )
    assert transfer is not None
    assert transfer.text == f"Transferred to group {GROUP_B} by {ANA}: needs billing."
    assert transfer.refs == {str(GROUP_B): "group", str(ANA): "member"}
    declined = assignment_entry(
        wrapped(
            HandOffDeclined(
                conversation_id=CONVERSATION,
                workspace_id=UUID(int=1),
                group_id=GROUP_A,
                reason="the conversation is closed",
                declined_at=AT,
            ),
            4,
        )
    )
    assert declined is not None
    assert declined.text == "Hand-off declined: the conversation is closed."
    # A transfer's lines, all at one instant, read in the order they happened.
    decided = assignment_entry(assigned(GROUP_B, BETO, AT, 5))
    assert decided is not None
    seqs = [e.seq for e in (release, transfer, decided)]
    assert seqs == sorted(seqs)


def test_claims_and_transfers_get_verdicts_and_refusals_say_why() -> None:
    claimed = assignment_outcome(caused_by(assigned(GROUP_A, ANA, AT, 1, via="claim"), CLAIM))
    assert claimed is not None
    assert (claimed.command_id, claimed.command_type, claimed.outcome) == (
        CLAIM,
        "assignment.claim_conversation",
        "accepted",
    )
    assert claimed.result == {
        "conversation_id": str(CONVERSATION),
        "member_id": str(ANA),
        "group_id": str(GROUP_A),
    }
    # A rotation's assignment answers no command (its cause is a hand-off or a nudge).
    assert assignment_outcome(caused_by(assigned(GROUP_A, ANA, AT, 2), CLAIM)) is None
    refused = assignment_outcome(
        wrapped(
            AssignmentCommandRejected(
                command_id=CLAIM,
                command_type="assignment.claim_conversation",
                conversation_id=CONVERSATION,
                workspace_id=UUID(int=1),
                member_id=BETO,
                reason="already assigned to Ana",
                conflict=True,
            ),
            3,
        )
    )
    assert refused is not None
    assert (refused.command_id, refused.outcome, refused.reason, refused.result) == (
        CLAIM,
        "rejected",
        "already assigned to Ana",
        {"conflict": True},
    )
    assert assignment_entry(wrapped(refused_payload(), 4)) is None


def refused_payload() -> AssignmentCommandRejected:
    return AssignmentCommandRejected(
        command_id=CLAIM,
        command_type="assignment.claim_conversation",
        conversation_id=CONVERSATION,
        workspace_id=UUID(int=1),
        member_id=BETO,
        reason="not queued",
        conflict=False,
    )


def test_changes_name_whose_screens_a_decision_concerns() -> None:
    assert assignment_change(assigned(GROUP_A, ANA, AT, 1)) == (CONVERSATION, GROUP_A, ANA)
    assert assignment_change(queued(None, AT, 2)) == (CONVERSATION, None, None)
    assert assignment_change(wrapped(refused_payload(), 3)) is None


# Directory events: rows, and verdicts only for what a command caused.


def directory_event(payload: Payload, cause: UUID | None = CLAIM) -> Envelope:
    return wrapped(payload, 50).model_copy(update={"causation_id": cause})


def test_member_and_group_changes_become_row_updates_with_verdicts() -> None:
    rows = directory_rows(
        directory_event(
            AgentStatusChanged(
                workspace_id=UUID(int=1),
                member_id=ANA,
                status="available",
                previous="offline",
                reason="set by the agent",
            )
        )
    )
    assert rows == [
        MemberStatus(ANA, "available", AT),
        OutcomeRow(
            CLAIM, "directory.set_agent_status", "accepted", "", AT, {"status": "available"}
        ),
    ]
    [removal] = directory_rows(
        directory_event(
            GroupMemberRemoved(workspace_id=UUID(int=1), group_id=GROUP_A, member_id=ANA),
            cause=None,
        )
    )
    assert removal == GroupMemberRemoval(GROUP_A, ANA)
    deleted = directory_rows(
        directory_event(GroupDeleted(workspace_id=UUID(int=1), group_id=GROUP_A))
    )
    assert deleted[0] == GroupDeletion(GROUP_A, AT)


def test_the_admin_created_with_a_workspace_answers_for_the_workspace_command() -> None:
    created = directory_rows(
        directory_event(WorkspaceCreated(workspace_id=UUID(int=1), name="Acme", time_zone="UTC"))
    )
    assert [row.command_type for row in created if isinstance(row, OutcomeRow)] == [
        "directory.create_workspace"
    ]


def test_history_lines_name_groups_and_members_when_read() -> None:
    """The hand-off line showed the group's UUID: lines keep ids (a rebuild must not depend
    on names read first) and the history API shows names, or the id when none is known."""
    hand_off = history_entry(
        wrapped(
            HandOffRequested(
                conversation_id=CONVERSATION,
                workspace_id=UUID(int=1),
                phone_number_id="4801",
                contact_wa_id="5731",
                group_id=GROUP_A,
                rotation="specific",
                member_id=ANA,
                reason="flow block 'agent'",
                requested_at=AT,
            ),
            1,
        ),
        None,
    )
    assert hand_off is not None
    names = {str(GROUP_A): "Ventas", str(ANA): "Ana"}
    assert named(hand_off.text, hand_off.refs, names) == (
        "handed to agents: group Ventas, rotation specific, member Ana (flow block 'agent')"
    )
    assert named(hand_off.text, hand_off.refs, {}) == hand_off.text
    assert hand_off.content == {
        "group_id": str(GROUP_A),
        "rotation": "specific",
        "member_id": str(ANA),
        "reason": "flow block 'agent'",
    }
    released_from_queue = assignment_entry(released(GROUP_A, None, "group_deleted", 2))
    assert released_from_queue is not None
    assert named(released_from_queue.text, released_from_queue.refs, names) == (
        "Released from the queue of group Ventas: the group was deleted."
    )
    # Text that merely looks like a name is left alone: only the line's own ids are named.
    assert named("group Ventas {x}", None, names) == "group Ventas {x}"
