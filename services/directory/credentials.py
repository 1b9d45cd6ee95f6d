"""Credentials of members added before ``member_added`` v2, carried over (once, at start).

``member_added`` v1 carried the token hash on ``directory.events``; v2 does not, and its
upcaster drops the hash from v1 records as they are read. So that those members' tokens keep
working, the directory reads the hashes from its own stored v1 records (raw: the codec would
upcast them away) and issues each member's credential on ``directory.credentials``, unless
one was issued since. Idempotent, and safe with two replicas: the append is optimistic and
the ids derive from the member and the hash.
"""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID, uuid5

import orjson
import structlog

from events.directory import MemberAdded
from events.envelope import Actor, Envelope
from runtime.store import EventStore, NewEvent, StreamConflict
from services.directory.decide import WorkspaceState, carry_over_credentials, evolve_workspace

log = structlog.get_logger(__name__)
CARRY_OVER_NAMESPACE = UUID("0d4b7c2e-9f13-4a8e-b6d5-3c2a1e0f9b87")
BATCH = 500
CONFLICT_ATTEMPTS = 5


def legacy_token_hashes(store: EventStore) -> dict[UUID, dict[UUID, str]]:
    """workspace id -> member id -> token hash, from the store's ``member_added`` v1."""
    found: dict[UUID, dict[UUID, str]] = {}
    after: int | None = None
    while True:
        batch = store.recorder.select_notifications(
            start=after,
            limit=BATCH,
            topics=[MemberAdded.event_type],
            inclusive_of_start=after is None,
        )
        for notification in batch:
            record = orjson.loads(notification.state)
            payload = record.get("payload") or {}
            token_hash = payload.get("token_hash")
            if record.get("schema_version") == 1 and isinstance(token_hash, str):
                workspace = UUID(str(payload["workspace_id"]))
                found.setdefault(workspace, {})[UUID(str(payload["member_id"]))] = token_hash
        if len(batch) < BATCH:
            return found
        after = batch[-1].id


def carry_over_legacy_credentials(store: EventStore) -> int:
    """Issue the credentials still missing; how many were issued. Blocking (a thread)."""
    issued = 0
    for workspace_id, hashes in legacy_token_hashes(store).items():
        for _ in range(CONFLICT_ATTEMPTS):
            stream = store.load(workspace_id)
            state = WorkspaceState(workspace_id)
            for envelope in stream.envelopes:
                state = evolve_workspace(state, envelope.payload)
            payloads = carry_over_credentials(state, hashes)
            if not payloads:
                break
            now = datetime.now(UTC)
            events = []
            for index, payload in enumerate(payloads, start=1):
                event_id = uuid5(CARRY_OVER_NAMESPACE, f"{payload.member_id}:{payload.token_hash}")
                envelope = Envelope.wrap(
                    payload,
                    event_id=event_id,
                    stream_id=str(workspace_id),
                    workspace_id=workspace_id,
                    occurred_at=now,
                    correlation_id=event_id,
                    causation_id=None,
                    actor=Actor(kind="system", id="directory"),
                )
                events.append(NewEvent(workspace_id, stream.version + index, envelope))
            try:
                store.append(events, None)
            except StreamConflict:
                continue
            issued += len(events)
            break
    if issued:
        log.info("credentials carried over from member_added v1", count=issued)
    return issued
