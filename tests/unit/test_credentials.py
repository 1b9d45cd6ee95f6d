"""Credentials travel apart: member_added v2 has no token hash, the hash is issued on the
restricted directory.credentials topic (added, rotated, carried over from v1 records), and
the read models authenticate from it."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID

import orjson
import pytest

from events.catalogue import DIRECTORY_EVENTS_TOPIC, TOPICS, build_registry, topic_of
from events.codec import decode
from events.directory import (
    CommandRejected,
    MemberAdded,
    MemberCredentialIssued,
    MemberDeactivated,
    RotateMemberToken,
    WorkspaceCreated,
)
from events.envelope import Actor, Envelope
from projections.directory import CredentialRow, MemberRow, OutcomeRow, directory_rows
from services.directory.decide import (
    WorkspaceState,
    carry_over_credentials,
    decide_rotate_member_token,
    evolve_workspace,
)

pytestmark = pytest.mark.unit
WORKSPACE, ADMIN, AGENT, GONE = UUID(int=1), UUID(int=2), UUID(int=3), UUID(int=4)
COMMAND_ID = UUID(int=99)
AT = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def test_a_member_added_v1_record_is_read_without_its_token_hash() -> None:
    """Records written before v2 keep their bytes on the topic; no reader sees the hash."""
    v1 = {
        "event_id": str(UUID(int=50)),
        "event_type": "directory.member_added",
        "schema_version": 1,
        "stream_id": str(WORKSPACE),
        "workspace_id": str(WORKSPACE),
        "occurred_at": AT.isoformat(),
        "correlation_id": str(UUID(int=50)),
        "causation_id": None,
        "actor": {"kind": "system", "id": None},
        "payload": {
            "workspace_id": str(WORKSPACE),
            "member_id": str(AGENT),
            "name": "Beto",
            "role": "agent",
            "capacity": 3,
            "token_hash": "b" * 64,
        },
    }
    envelope = decode(orjson.dumps(v1), build_registry())
    assert envelope.schema_version == 2
    assert envelope.payload == MemberAdded(
        workspace_id=WORKSPACE, member_id=AGENT, name="Beto", role="agent", capacity=3
    )
    assert "b" * 64 not in envelope.model_dump_json()


def test_no_event_on_directory_events_carries_a_credential_and_theirs_is_restricted() -> None:
    for payload in DIRECTORY_EVENTS_TOPIC.carries:
        assert not [name for name in payload.model_fields if "token" in name], payload
    credentials = topic_of(MemberCredentialIssued.event_type)
    assert credentials.name == "directory.credentials"
    for topic in TOPICS:
        carries_hash = any(
            "token_hash" in name for payload in topic.carries for name in payload.model_fields
        )
        assert topic.restricted == carries_hash, topic.name


def workspace(*events: object) -> WorkspaceState:
    state = WorkspaceState(WORKSPACE)
    history = [
        WorkspaceCreated(workspace_id=WORKSPACE, name="Acme", time_zone="UTC"),
        MemberAdded(workspace_id=WORKSPACE, member_id=ADMIN, name="Ana", role="admin", capacity=9),
        MemberAdded(workspace_id=WORKSPACE, member_id=AGENT, name="Beto", role="agent", capacity=3),
        MemberAdded(workspace_id=WORKSPACE, member_id=GONE, name="Ciro", role="agent", capacity=3),
        MemberDeactivated(workspace_id=WORKSPACE, member_id=GONE),
        *events,
    ]
    for event in history:
        state = evolve_workspace(state, event)  # type: ignore[arg-type]
    return state


def test_a_token_is_rotated_for_an_active_member_of_this_workspace_only() -> None:
    rotate = RotateMemberToken(workspace_id=WORKSPACE, member_id=AGENT, token_hash="e" * 64)
    assert decide_rotate_member_token(rotate, COMMAND_ID, workspace()) == [
        MemberCredentialIssued(
            workspace_id=WORKSPACE, member_id=AGENT, token_hash="e" * 64, reason="rotated"
        )
    ]
    for member, reason in ((GONE, "deactivated"), (UUID(int=66), "no member")):
        [rejected] = decide_rotate_member_token(
            rotate.model_copy(update={"member_id": member}), COMMAND_ID, workspace()
        )
        assert isinstance(rejected, CommandRejected)
        assert reason in rejected.reason


def test_credentials_of_v1_members_are_carried_over_once() -> None:
    legacy = {ADMIN: "a" * 64, AGENT: "b" * 64, UUID(int=77): "z" * 64}
    issued = carry_over_credentials(workspace(), legacy)
    assert issued == [
        MemberCredentialIssued(
            workspace_id=WORKSPACE, member_id=ADMIN, token_hash="a" * 64, reason="carried_over"
        ),
        MemberCredentialIssued(
            workspace_id=WORKSPACE, member_id=AGENT, token_hash="b" * 64, reason="carried_over"
        ),
    ]
    # Once issued (or rotated since), never again: a later rotation is not undone.
    rotated = MemberCredentialIssued(
        workspace_id=WORKSPACE, member_id=AGENT, token_hash="f" * 64, reason="rotated"
    )
    assert carry_over_credentials(workspace(issued[0], rotated), legacy) == []


def _envelope(payload: object, causation: UUID | None = COMMAND_ID) -> Envelope:
    return Envelope.wrap(
        payload,  # type: ignore[arg-type]
        event_id=UUID(int=500),
        stream_id=str(WORKSPACE),
        workspace_id=WORKSPACE,
        occurred_at=AT,
        correlation_id=UUID(int=500),
        causation_id=causation,
        actor=Actor(kind="member", id=str(ADMIN)),
    )


def test_the_read_models_keep_the_member_and_its_credential_apart() -> None:
    added = MemberAdded(
        workspace_id=WORKSPACE, member_id=AGENT, name="Beto", role="agent", capacity=3
    )
    [member, outcome] = directory_rows(_envelope(added))
    assert member == MemberRow(AGENT, WORKSPACE, "Beto", "agent", 3)
    assert isinstance(outcome, OutcomeRow)

    issued = MemberCredentialIssued(
        workspace_id=WORKSPACE, member_id=AGENT, token_hash="b" * 64, reason="added"
    )
    # The addition answered for AddMember already: the credential adds no second verdict.
    assert directory_rows(_envelope(issued)) == [CredentialRow(AGENT, WORKSPACE, "b" * 64, AT)]

    rotated = issued.model_copy(update={"token_hash": "e" * 64, "reason": "rotated"})
    [credential, verdict] = directory_rows(_envelope(rotated))
    assert credential == CredentialRow(AGENT, WORKSPACE, "e" * 64, AT)
    assert verdict == OutcomeRow(
        COMMAND_ID,
        RotateMemberToken.event_type,
        "accepted",
        "",
        AT,
        {"member_id": str(AGENT)},
    )
