"""The directory's handler through the runtime, on the in-memory store (no I/O).

Given admin commands as fetched from ``directory.commands``, when the runtime handles them,
then each event is in the stream it belongs to, keyed by workspace, and a command the relay
or the CLI sends again decides nothing new.
"""

from __future__ import annotations

from uuid import UUID

import pytest

from events.base import Payload
from events.directory import (
    AddMember,
    BusinessNumberConnected,
    CommandRejected,
    CreateGroup,
    CreateWorkspace,
    MemberAdded,
    UpdateMember,
    WorkspaceCreated,
)
from events.envelope import Actor, Envelope
from events.flows import FlowPublished, PublishFlow
from services.directory.handlers import DirectoryHandler, number_stream
from tests.flow_samples import support_flow
from tests.memory import InMemory, Topic, envelope

pytestmark = pytest.mark.unit

WORKSPACE = UUID(int=10)
ADMIN = UUID(int=11)
AGENT = UUID(int=12)
GROUP = UUID(int=13)
FLOW = UUID(int=14)
ADMIN_ACTOR = Actor(kind="member", id=str(ADMIN))


def command(payload: Payload) -> Envelope:
    return envelope(payload, stream_id=str(WORKSPACE), workspace_id=WORKSPACE, actor=ADMIN_ACTOR)


CREATE = command(
    CreateWorkspace(
        workspace_id=WORKSPACE,
        name="Acme",
        time_zone="America/Bogota",
        phone_number_id="4801",
        admin_member_id=ADMIN,
        admin_name="Ana",
        admin_token_hash="a" * 64,
        agent_conversations=True,
    )
)


def directory() -> tuple[InMemory, Topic]:
    return InMemory("directory", DirectoryHandler()), Topic("directory.commands")


def test_a_workspace_is_created_in_its_streams_and_keyed_by_workspace() -> None:
    handling, commands = directory()
    handling.handle(commands.record(CREATE))
    events = handling.store.events()
    assert [type(e.payload) for e in events][:3] == [
        WorkspaceCreated,
        BusinessNumberConnected,
        MemberAdded,
    ]
    assert {e.stream_id for e in events} == {str(WORKSPACE)}
    assert handling.store.load(number_stream("4801")).version == 1
    assert handling.store.load(WORKSPACE).version == 3  # created, admin added, credential
    assert all(e.causation_id == CREATE.event_id for e in events)


def test_commands_of_one_batch_decide_on_what_the_earlier_ones_did() -> None:
    handling, commands = directory()
    add = command(
        AddMember(
            workspace_id=WORKSPACE,
            member_id=AGENT,
            name="Bruno",
            role="agent",
            capacity=3,
            token_hash="b" * 64,
        )
    )
    group = command(
        CreateGroup(workspace_id=WORKSPACE, group_id=GROUP, name="Soporte", created_by=ADMIN)
    )
    handling.handle(commands.record(CREATE), commands.record(add), commands.record(group))
    payloads = handling.payloads()
    assert not [p for p in payloads if isinstance(p, CommandRejected)]
    assert any(isinstance(p, MemberAdded) and p.member_id == AGENT for p in payloads)
    assert handling.store.position("directory.commands#0") == 3


def test_a_command_sent_again_after_the_state_moved_on_decides_nothing() -> None:
    handling, commands = directory()
    add = command(
        AddMember(
            workspace_id=WORKSPACE,
            member_id=AGENT,
            name="Bruno",
            role="agent",
            capacity=3,
            token_hash="b" * 64,
        )
    )
    rename = command(
        UpdateMember(
            workspace_id=WORKSPACE, member_id=AGENT, name="Bruna", role=None, capacity=None
        )
    )
    publish = command(
        PublishFlow(
            workspace_id=WORKSPACE, flow_id=FLOW, definition=support_flow(GROUP), published_by=ADMIN
        )
    )
    group = command(
        CreateGroup(workspace_id=WORKSPACE, group_id=GROUP, name="Soporte", created_by=ADMIN)
    )
    handling.handle(*(commands.record(c) for c in (CREATE, add, rename, group, publish)))
    before = handling.payloads()
    # The relay publishes the add and the publish again (a crash before it recorded them):
    # decided again, the add would now be refused (the member is called Bruna) and the flow
    # would get a second version.
    handling.handle(commands.record(add), commands.record(publish))
    assert handling.payloads() == before
    assert [p.version for p in before if isinstance(p, FlowPublished)] == [1]
    assert handling.store.position("directory.commands#0") == 7


def test_a_refused_command_is_stored_in_a_stream_of_its_own() -> None:
    handling, commands = directory()
    orphan = command(
        CreateGroup(workspace_id=WORKSPACE, group_id=GROUP, name="Soporte", created_by=ADMIN)
    )
    handling.handle(commands.record(orphan))
    (event,) = handling.store.events()
    assert isinstance(event.payload, CommandRejected)
    assert "does not exist" in event.payload.reason
    assert handling.store.load(orphan.event_id).version == 1
