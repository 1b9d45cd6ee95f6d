"""Member and group commands through the real directory, relay and projector, read back
with the ReadModels queries the gateway uses."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from psycopg_pool import AsyncConnectionPool

from events.base import Payload
from events.catalogue import DIRECTORY_COMMANDS_TOPIC
from events.codec import encode
from events.directory import (
    AddGroupMember,
    AddMember,
    CreateGroup,
    DeactivateMember,
    DeleteGroup,
    RemoveGroupMember,
    RenameGroup,
    SetAgentStatus,
    SetNotificationSettings,
    UpdateMember,
)
from events.envelope import Actor, Envelope
from projections.queries import ReadModels, token_hash
from services.settings import Settings
from services.workspaces import create_workspace
from tests.harness import consumers, eventually, query

pytestmark = pytest.mark.integration
BETO_TOKEN = "sb_beto-test-token"


class Admin:
    """An admin sending directory commands the way the gateway does, and reading verdicts."""

    def __init__(
        self, settings: Settings, producer: AIOKafkaProducer, models: ReadModels, ws: dict[str, Any]
    ) -> None:
        self.settings = settings
        self.producer = producer
        self.models = models
        self.workspace_id = uuid.UUID(ws["workspace_id"])
        self.member_id = uuid.UUID(ws["admin_member_id"])

    async def send(self, command: Payload) -> dict[str, Any]:
        """The directory's verdict on ``command`` (the command_outcomes row)."""
        command_id = uuid.uuid4()
        envelope = Envelope.wrap(
            command,
            event_id=command_id,
            stream_id=str(self.workspace_id),
            workspace_id=self.workspace_id,
            occurred_at=datetime.now(UTC),
            correlation_id=command_id,
            causation_id=None,
            actor=Actor(kind="member", id=str(self.member_id)),
        )
        await self.producer.send_and_wait(
            DIRECTORY_COMMANDS_TOPIC.qualified(self.settings.topic_prefix),
            encode(envelope),
            key=envelope.stream_id.encode(),
        )
        outcome = await eventually(
            lambda: self.models.command_outcome(command_id), lambda found: found is not None
        )
        assert outcome is not None
        return outcome

    async def accepted(self, command: Payload) -> dict[str, Any]:
        outcome = await self.send(command)
        assert outcome["outcome"] == "accepted", outcome
        assert outcome["command_type"] == command.event_type
        result: dict[str, Any] = outcome["result"]
        return result

    async def rejected(self, command: Payload) -> str:
        outcome = await self.send(command)
        assert outcome["outcome"] == "rejected", outcome
        return str(outcome["reason"])


@pytest.fixture
async def admin(settings: Settings) -> AsyncIterator[Admin]:
    async with consumers(settings):
        workspace = await create_workspace(
            settings, name="Acme", phone_number_id="4801", admin_name="Ana"
        )
        producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
        await producer.start()
        pool = AsyncConnectionPool(
            settings.database().conninfo(), min_size=1, max_size=2, open=False
        )
        try:
            await pool.open()
            models = ReadModels(pool, settings.schema("projections"))
            yield Admin(settings, producer, models, workspace)
        finally:
            await pool.close()
            await producer.stop()


async def test_members_groups_statuses_and_notifications(admin: Admin) -> None:
    ws, models = admin.workspace_id, admin.models
    beto = uuid.uuid4()
    added = await admin.accepted(
        AddMember(
            workspace_id=ws,
            member_id=beto,
            name="Beto",
            role="agent",
            capacity=3,
            token_hash=token_hash(BETO_TOKEN),
        )
    )
    assert added == {"member_id": str(beto)}
    members = await models.members(ws)
    assert [(m["name"], m["role"], m["status"], m["active"]) for m in members] == [
        ("Ana", "admin", "offline", True),
        ("Beto", "agent", "offline", True),
    ]
    assert (members[1]["desktop_notifications"], members[1]["sound_notifications"]) == (
        True,
        True,
    )
    assert members[1]["group_ids"] == []
    # The token's hash arrives on directory.credentials, apart from the member's row.
    caller = await eventually(lambda: models.caller(BETO_TOKEN), lambda found: found is not None)
    assert caller is not None
    assert caller.member_id == beto

    group = uuid.uuid4()
    await admin.accepted(
        CreateGroup(workspace_id=ws, group_id=group, name="Ventas", created_by=admin.member_id)
    )
    join = AddGroupMember(workspace_id=ws, group_id=group, member_id=beto)
    assert await admin.accepted(join) == {"group_id": str(group), "member_id": str(beto)}
    assert "already a member" in await admin.rejected(join)
    assert await models.is_group_member(group, beto)
    assert await models.member_group_ids(ws, beto) == [group]

    status = SetAgentStatus(
        workspace_id=ws, member_id=beto, status="available", reason="set by the agent"
    )
    assert await admin.accepted(status) == {"status": "available"}
    assert await admin.rejected(status) == "already available"
    await admin.accepted(
        SetNotificationSettings(workspace_id=ws, member_id=beto, desktop=False, sound=True)
    )
    updated = await admin.accepted(
        UpdateMember(workspace_id=ws, member_id=beto, name=None, role=None, capacity=5)
    )
    assert updated == {"member_id": str(beto), "name": "Beto", "role": "agent", "capacity": 5}

    member = await models.member(ws, beto)
    assert member is not None
    assert (member["status"], member["capacity"], member["group_ids"]) == (
        "available",
        5,
        [group],
    )
    assert member["status_changed_at"] is not None
    assert (member["desktop_notifications"], member["sound_notifications"]) == (False, True)
    [on_roster] = await models.roster(ws, group)
    assert (on_roster["member_id"], on_roster["status"], on_roster["load"]) == (
        beto,
        "available",
        0,
    )
    assert on_roster["capacity"] == 5

    # The status lives in the member's own stream, not the workspace's.
    streams = await query(
        admin.settings,
        "directory",
        "SELECT originator_id FROM {s}.events WHERE topic = 'directory.agent_status_changed'",
    )
    assert [row["originator_id"] for row in streams] == [beto]
    [change] = [
        c for c in await models.changes_since(ws, 0, 100) if c["kind"].endswith("status_changed")
    ]
    assert (change["member_id"], change["workspace_id"]) == (beto, ws)
    assert await models.last_change_seq(ws) >= change["seq"]
    # After it, only the notification settings Beto's other browsers must show too.
    [settings_change] = await models.changes_since(ws, change["seq"], 100)
    assert (settings_change["kind"], settings_change["member_id"]) == (
        "directory.notification_settings_changed",
        beto,
    )

    await admin.accepted(RenameGroup(workspace_id=ws, group_id=group, name="Ventas Norte"))
    [listed] = await models.groups(ws)
    assert (listed["name"], listed["member_ids"]) == ("Ventas Norte", [beto])

    await admin.accepted(RemoveGroupMember(workspace_id=ws, group_id=group, member_id=beto))
    assert not await models.is_group_member(group, beto)
    assert await models.roster(ws, group) == []
    assert "is not in group" in await admin.rejected(
        RemoveGroupMember(workspace_id=ws, group_id=group, member_id=beto)
    )

    await admin.accepted(DeleteGroup(workspace_id=ws, group_id=group))
    assert await models.groups(ws) == []
    deleted = await models.group(ws, group)
    assert deleted is not None
    assert deleted["name"] == "Ventas Norte"
    assert deleted["deleted_at"] is not None
    assert "is deleted" in await admin.rejected(DeleteGroup(workspace_id=ws, group_id=group))

    await admin.accepted(DeactivateMember(workspace_id=ws, member_id=beto))
    assert await models.caller(BETO_TOKEN) is None
    gone = await models.member(ws, beto)
    assert gone is not None
    assert gone["active"] is False
    assert await admin.rejected(DeactivateMember(workspace_id=ws, member_id=admin.member_id)) == (
        "the workspace needs at least one active admin"
    )


async def test_another_workspaces_members_and_groups_are_refused(admin: Admin) -> None:
    other = await create_workspace(admin.settings, name="Other", phone_number_id="4802")
    stranger = uuid.UUID(other["admin_member_id"])
    ws = admin.workspace_id
    group = uuid.uuid4()
    await admin.accepted(
        CreateGroup(workspace_id=ws, group_id=group, name="Ventas", created_by=admin.member_id)
    )
    reason = await admin.rejected(
        AddGroupMember(workspace_id=ws, group_id=group, member_id=stranger)
    )
    assert reason == f"no member {stranger} here"
    reason = await admin.rejected(
        SetAgentStatus(workspace_id=ws, member_id=stranger, status="available", reason="x")
    )
    assert reason == f"no member {stranger} here"
    assert await admin.models.member(ws, stranger) is None
    other_ws = uuid.UUID(other["workspace_id"])
    assert await admin.models.group(other_ws, group) is None
    assert [m["name"] for m in await admin.models.members(other_ws)] == ["Admin"]
