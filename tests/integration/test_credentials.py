"""Credentials on the real broker and database: none on directory.events (read raw), the
restricted directory.credentials topic authenticates (rotation and deactivation included),
tokens survive a rebuild of the read models, and members added by member_added v1 records
(before credentials had a topic of their own) keep working."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import anyio.to_thread
import httpx
import orjson
import pytest
from eventsourcing.persistence import StoredEvent

from events.catalogue import (
    DIRECTORY_CREDENTIALS_TOPIC,
    DIRECTORY_EVENTS_TOPIC,
    build_registry,
)
from events.codec import encode
from events.directory import BusinessNumberConnected, MemberCredentialIssued, WorkspaceCreated
from events.envelope import Actor, Envelope
from projections.app import open_recorder
from projections.queries import token_hash
from runtime.postgres import open_datastore
from runtime.store import EventStore
from services.settings import Settings
from services.workspaces import create_workspace
from tests.harness import (
    consumers,
    eventually,
    gateway_client,
    projector_caught_up,
    topic_records,
    topic_values,
)

pytestmark = pytest.mark.integration


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def status(client: httpx.AsyncClient, token: str) -> int:
    return (await client.get("/api/me", headers=bearer(token))).status_code


async def test_no_credential_on_directory_events_and_rotation_replaces_the_token(
    settings: Settings,
) -> None:
    async with consumers(settings), gateway_client(settings) as client:
        workspace = await create_workspace(settings, name="Acme", phone_number_id="480166660001")
        admin = bearer(workspace["admin_token"])
        ana = (await client.post("/api/members", json={"name": "Ana"}, headers=admin)).json()
        assert await status(client, ana["token"]) == 200

        # The member rotates its own token: the old one stops, the new one works at once.
        rotated = await client.post(
            f"/api/members/{ana['member_id']}/token", headers=bearer(ana["token"])
        )
        assert rotated.status_code == 200, rotated.text
        new_token = rotated.json()["token"]
        assert new_token != ana["token"]
        assert await status(client, new_token) == 200
        assert await status(client, ana["token"]) == 401
        # An agent rotates no one else's; an admin rotates anyone's.
        admin_id = (await client.get("/api/me", headers=admin)).json()["member_id"]
        other = await client.post(f"/api/members/{admin_id}/token", headers=bearer(new_token))
        assert other.status_code == 403

        hashes = {token_hash(t) for t in (workspace["admin_token"], ana["token"], new_token)}
        events = await topic_values(settings, DIRECTORY_EVENTS_TOPIC)
        assert any(b"directory.member_added" in value for value in events)
        for value in events:
            assert b"token_hash" not in value
            assert not [h for h in hashes if h.encode() in value]

        credentials = await eventually(
            lambda: topic_records(settings, DIRECTORY_CREDENTIALS_TOPIC),
            lambda found: len(found) == 3,
        )
        issued = [record.payload for record in credentials]
        assert all(isinstance(payload, MemberCredentialIssued) for payload in issued)
        assert {(p.reason, p.token_hash) for p in issued} == {  # type: ignore[attr-defined]
            ("added", token_hash(workspace["admin_token"])),
            ("added", token_hash(ana["token"])),
            ("rotated", token_hash(new_token)),
        }

        gone = await client.delete(f"/api/members/{ana['member_id']}", headers=admin)
        assert gone.status_code == 200, gone.text
        assert await status(client, new_token) == 401
        rotate_gone = await client.post(f"/api/members/{ana['member_id']}/token", headers=admin)
        assert rotate_gone.status_code == 422
        assert "deactivated" in rotate_gone.json()["detail"]


async def test_tokens_work_after_the_read_models_are_rebuilt(settings: Settings) -> None:
    async with consumers(settings), gateway_client(settings) as client:
        workspace = await create_workspace(settings, name="Acme", phone_number_id="480166660002")
        admin = bearer(workspace["admin_token"])
        ana = (await client.post("/api/members", json={"name": "Ana"}, headers=admin)).json()
        beto = (await client.post("/api/members", json={"name": "Beto"}, headers=admin)).json()
        rotated = await client.post(f"/api/members/{ana['member_id']}/token", headers=admin)
        assert rotated.status_code == 200, rotated.text
        gone = await client.delete(f"/api/members/{beto['member_id']}", headers=admin)
        assert gone.status_code == 200, gone.text

    def rebuild() -> None:  # as `switchboard projections rebuild` does, the projector stopped
        recorder = open_recorder(settings)
        try:
            recorder.rebuild()
        finally:
            recorder.datastore.close()

    await anyio.to_thread.run_sync(rebuild)
    async with consumers(settings), gateway_client(settings) as client:
        await eventually(lambda: status(client, workspace["admin_token"]), lambda code: code == 200)
        new_token = rotated.json()["token"]
        await eventually(lambda: status(client, new_token), lambda code: code == 200)
        await eventually(lambda: projector_caught_up(settings), bool)
        for refused in (ana["token"], beto["token"]):
            assert await status(client, refused) == 401


async def test_members_added_by_member_added_v1_keep_their_tokens(settings: Settings) -> None:
    """What an upgraded deployment has: a directory store (and directory.events) holding
    member_added v1 records with the hash. The directory carries each credential over once
    at start; the old record stays on the topic as written (Kafka cannot edit it)."""
    workspace_id, admin_id, number = uuid4(), uuid4(), "480166660003"
    token = "sb_written_before_v2"
    at = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)

    def write_the_old_history() -> None:
        datastore = open_datastore(settings, settings.schema("directory"))
        store = EventStore.create(settings, datastore, build_registry())
        try:
            records = [
                encode(
                    _envelope(
                        WorkspaceCreated(workspace_id=workspace_id, name="Old", time_zone="UTC"),
                        workspace_id,
                        1,
                        at,
                    )
                ),
                encode(
                    _envelope(
                        BusinessNumberConnected(
                            workspace_id=workspace_id,
                            phone_number_id=number,
                            agent_conversations=True,
                        ),
                        workspace_id,
                        2,
                        at,
                    )
                ),
                _member_added_v1(workspace_id, admin_id, token_hash(token), at),
            ]
            types = (
                "directory.workspace_created",
                "directory.business_number_connected",
                "directory.member_added",
            )
            store.recorder.insert_events(
                [
                    StoredEvent(workspace_id, version, topic, state)
                    for version, (topic, state) in enumerate(
                        zip(types, records, strict=True), start=1
                    )
                ]
            )
        finally:
            datastore.close()

    await anyio.to_thread.run_sync(write_the_old_history)
    for _ in range(2):  # a second start carries nothing over again
        async with consumers(settings), gateway_client(settings) as client:
            me = await eventually(
                lambda: client.get("/api/me", headers=bearer(token)),
                lambda response: response.status_code == 200,
            )
            assert me.json()["member_id"] == str(admin_id)

    [credential] = await topic_records(settings, DIRECTORY_CREDENTIALS_TOPIC)
    assert credential.payload == MemberCredentialIssued(
        workspace_id=workspace_id,
        member_id=admin_id,
        token_hash=token_hash(token),
        reason="carried_over",
    )
    # The v1 record is on directory.events as it was written: its hash went out before this
    # version, which is why the README advises rotating those members' tokens.
    old = [v for v in await topic_values(settings, DIRECTORY_EVENTS_TOPIC) if b"member_added" in v]
    assert [orjson.loads(v)["schema_version"] for v in old] == [1]


def _envelope(payload: Any, workspace_id: UUID, n: int, at: datetime) -> Envelope:
    event_id = uuid4()
    return Envelope.wrap(
        payload,
        event_id=event_id,
        stream_id=str(workspace_id),
        workspace_id=workspace_id,
        occurred_at=at,
        correlation_id=event_id,
        causation_id=None,
        actor=Actor(kind="system", id="switchboard-cli"),
    )


def _member_added_v1(workspace_id: UUID, member_id: UUID, hashed: str, at: datetime) -> bytes:
    """A member_added record as the directory wrote it before v2 (with the hash)."""
    event_id = str(uuid4())
    return orjson.dumps(
        {
            "event_id": event_id,
            "event_type": "directory.member_added",
            "schema_version": 1,
            "stream_id": str(workspace_id),
            "workspace_id": str(workspace_id),
            "occurred_at": at.isoformat(),
            "correlation_id": event_id,
            "causation_id": None,
            "actor": {"kind": "system", "id": "switchboard-cli"},
            "payload": {
                "workspace_id": str(workspace_id),
                "member_id": str(member_id),
                "name": "Admin",
                "role": "admin",
                "capacity": 10,
                "token_hash": hashed,
            },
        }
    )
