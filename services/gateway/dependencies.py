"""What every route needs: the read models, the caller behind the token, the publisher."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar
from uuid import UUID, uuid4

from fastapi import Depends, HTTPException, Request
from fastapi.responses import JSONResponse
from fastapi.security import APIKeyCookie, HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel

from events.base import Payload
from events.catalogue import DIRECTORY_COMMANDS_TOPIC
from events.codec import RecordHeader, encode
from events.envelope import Actor, Envelope
from projections.queries import Caller, ReadModels
from runtime.producer import (
    HealingProducer,
    KafkaRecord,
    PublishFailed,
    RecordRejected,
    RecordTooLarge,
    RecordUnencodable,
)
from services.conversations import permissions
from services.conversations.permissions import (
    Allowed,
    Asker,
    ConversationFacts,
    Refused,
)
from services.gateway.idempotency import ReplyKeys
from services.gateway.responses import CommandPending
from services.gateway.web.session import (
    COOKIE,
    CSRF_HEADER,
    SAFE_METHODS,
    SessionCodec,
    csrf_problem,
)
from services.gateway.webhook import OutgoingRecord
from services.settings import Settings

COMMAND_WAIT_SECONDS = 10.0
T = TypeVar("T")
A = TypeVar("A", bound=Allowed)

# The OpenAPI document's security scheme; the check itself is ``caller`` (401, never 403,
# for a missing or unknown token).
bearer = HTTPBearer(
    scheme_name="memberToken",
    bearerFormat="opaque",
    description="A member's token: printed by `switchboard workspace create` for the first"
    " admin, answered once by `POST /api/members` for the others.",
    auto_error=False,
)
# The agent suite's pages call the API with their session cookie instead (see
# services/gateway/web/session.py); documented as a second scheme.
suite_session = APIKeyCookie(
    name=COOKIE,
    scheme_name="suiteSession",
    description="The agent suite's signed session cookie, set by `POST /sign-in`. Writes made"
    " with it also need the page's `X-CSRF-Token` header and a same-origin `Origin`.",
    auto_error=False,
)


class Publisher:
    """Publish records and wait for the broker's acknowledgement of every one."""

    def __init__(self, producer: HealingProducer, timeout: float) -> None:
        self.producer = producer
        self.timeout = timeout

    async def publish(self, topic: str, records: list[OutgoingRecord]) -> None:
        """Every record acknowledged, or :class:`PublishFailed`: ``BrokerUnavailable`` when
        it may pass, ``RecordTooLarge`` or ``RecordUnencodable`` when it never will."""
        await self.producer.send_all(
            [kafka_record(topic, record) for record in records], within=self.timeout
        )


def kafka_record(topic: str, record: OutgoingRecord) -> KafkaRecord:
    try:
        value = encode(record.envelope)
    except (TypeError, ValueError) as error:  # e.g. JSON nested deeper than the encoder goes
        raise RecordUnencodable(
            f"{record.envelope.event_type} cannot be encoded as JSON: {error}"
        ) from None
    return KafkaRecord(
        topic=topic,
        key=record.key.encode(),
        value=value,
        headers=RecordHeader.of(record.envelope).kafka_headers(),
    )


RETRY_AFTER_SECONDS = 5


def publish_refused(error: PublishFailed) -> HTTPException:
    """A publish that failed, as HTTP: 503 with ``Retry-After`` when trying again may work;
    413 for a record too large for Kafka and 400 for one that cannot be encoded, which no
    retry changes."""
    if isinstance(error, RecordTooLarge):
        return HTTPException(413, f"too large for the message bus: {error}")
    if isinstance(error, RecordRejected):
        return HTTPException(400, f"cannot be published: {error}")
    return HTTPException(
        503,
        "the message bus is unavailable; retry later",
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


def read_models(request: Request) -> ReadModels:
    models: ReadModels = request.app.state.read_models
    return models


def publisher(request: Request) -> Publisher:
    found: Publisher = request.app.state.publisher
    return found


def current_time() -> datetime:
    """The gateway's clock, where it stamps what a member does (a reply's ``queued_at``).

    A dependency so that a test can script a day (``app.dependency_overrides``)."""
    return datetime.now(UTC)


def reply_keys(request: Request) -> ReplyKeys:
    found: ReplyKeys = request.app.state.reply_keys
    return found


def settings(request: Request) -> Settings:
    found: Settings = request.app.state.settings
    return found


def session_codec(request: Request) -> SessionCodec:
    found: SessionCodec = request.app.state.session_codec
    return found


async def caller(
    request: Request,
    models: Annotated[ReadModels, Depends(read_models)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    cookie: Annotated[str | None, Depends(suite_session)],
) -> Caller:
    """The member behind the bearer token, or behind the agent suite's session cookie; every
    API route is scoped to its workspace.

    A write made with the cookie must come from the suite's own page (see
    ``services/gateway/web/session.py``): 403 otherwise.
    """
    if credentials is not None or request.headers.get("authorization") is not None:
        if credentials is None or not credentials.credentials.strip():
            raise HTTPException(
                401,
                "send 'Authorization: Bearer <token>' with a member's token",
                headers={"WWW-Authenticate": "Bearer"},
            )
        found = await models.caller(credentials.credentials.strip())
        if found is None:
            raise HTTPException(401, "unknown or deactivated token", {"WWW-Authenticate": "Bearer"})
        return found
    session = session_codec(request).read(cookie)
    if session is None:
        raise HTTPException(
            401,
            "send 'Authorization: Bearer <token>' with a member's token (or sign in at /sign-in)",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if request.method not in SAFE_METHODS:
        problem = csrf_problem(request, session, request.headers.get(CSRF_HEADER))
        if problem is not None:
            raise HTTPException(403, problem)
    member = await models.session_caller(
        session.workspace_id, session.member_id, session.credential_issued_at
    )
    if member is None:
        raise HTTPException(
            401, "this session ended (its member was deactivated or given a new token); sign in"
        )
    return member


async def admin(who: Annotated[Caller, Depends(caller)]) -> Caller:
    enforce(permissions.administer(Asker(who.member_id, who.role)))
    return who


async def asker(models: ReadModels, who: Caller) -> Asker:
    """The caller as the permission rules see it: an agent's groups are read here (an
    admin's are not needed: it sees every conversation of its workspace)."""
    if who.role == "admin":
        return Asker(who.member_id, who.role)
    groups = await models.member_group_ids(who.workspace_id, who.member_id)
    return Asker(who.member_id, who.role, frozenset(groups))


def conversation_facts(row: dict[str, Any]) -> ConversationFacts:
    """A conversation's read-model row as the permission rules see it."""
    return ConversationFacts(
        conversation_id=row["conversation_id"],
        status=row["status"],
        close_reason=row.get("close_reason"),
        group_id=row.get("group_id"),
        assignee_id=row.get("assignee_id"),
        assignment_state=row.get("assignment_state"),
    )


def enforce(verdict: A | Refused) -> A:
    """A refusal as the HTTP error it means; an allowed verdict as it is."""
    if isinstance(verdict, Refused):
        raise HTTPException(verdict.status, verdict.reason)
    return verdict


async def permitted(
    models: ReadModels,
    who: Caller,
    conversation_id: UUID,
    # A permission rule on one conversation: the asker, the conversation (None: not in
    # the workspace) and its id.
    rule: Callable[[Asker, ConversationFacts | None, UUID], A | Refused],
) -> tuple[dict[str, Any], A]:
    """The conversation's row and the rule's verdict if it allows the caller; the HTTP
    error it means otherwise."""
    row = await models.conversation(who.workspace_id, conversation_id)
    facts = conversation_facts(row) if row is not None else None
    allowed = enforce(rule(await asker(models, who), facts, conversation_id))
    if row is None:  # no rule allows acting on a conversation that is not there
        raise HTTPException(404, f"no conversation {conversation_id} in this workspace")
    return row, allowed


async def visible_conversation(
    models: ReadModels, who: Caller, conversation_id: UUID
) -> dict[str, Any]:
    """The conversation if the caller may see it (``permissions.see``); 404 otherwise, with
    no hint that it exists."""
    row, _ = await permitted(models, who, conversation_id, permissions.see)
    return row


async def first(
    probe: Callable[[], Awaitable[T | None]], within: float = COMMAND_WAIT_SECONDS
) -> T | None:
    """The first thing ``probe`` finds within ``within`` seconds (None: nothing by then)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        found = await probe()
        if found is not None:
            return found
        await asyncio.sleep(0.05)
    return None


async def outcome_of(
    models: ReadModels, command_id: UUID, within: float = COMMAND_WAIT_SECONDS
) -> dict[str, Any] | None:
    """The deciding service's verdict on a command, once the read models show it (None:
    not yet)."""
    return await first(lambda: models.command_outcome(command_id), within)


async def send_command(
    publisher: Publisher, settings: Settings, who: Caller, command: Payload
) -> UUID:
    """Put an admin command on the directory's topic, as the calling member; its id."""
    return await send_record(
        publisher,
        who,
        DIRECTORY_COMMANDS_TOPIC.qualified(settings.topic_prefix),
        str(who.workspace_id),
        command,
    )


async def send_record(
    publisher: Publisher,
    who: Caller,
    topic: str,
    key: str,
    command: Payload,
    *,
    occurred_at: datetime | None = None,
) -> UUID:
    """Put a command on ``topic`` under ``key``, as the calling member; the command's id.

    503 if the broker does not acknowledge it: nothing was accepted, the caller retries
    (413/400 for a command Kafka can never take).
    """
    command_id = uuid4()
    moment = occurred_at if occurred_at is not None else datetime.now(UTC)
    envelope = member_envelope(who, key, command, command_id, moment)
    await publish_envelope(publisher, topic, envelope)
    return command_id


def member_envelope(
    who: Caller, key: str, command: Payload, command_id: UUID, occurred_at: datetime
) -> Envelope:
    """A command the calling member sends, under ``key``, as its own correlation."""
    return Envelope.wrap(
        command,
        event_id=command_id,
        stream_id=key,
        workspace_id=who.workspace_id,
        occurred_at=occurred_at,
        correlation_id=command_id,
        causation_id=None,
        actor=Actor(kind="member", id=str(who.member_id)),
    )


async def publish_envelope(publisher: Publisher, topic: str, envelope: Envelope) -> None:
    """Put a record on ``topic`` under its stream id; 503 (413/400) as ``send_record``."""
    try:
        await publisher.publish(topic, [OutgoingRecord(key=envelope.stream_id, envelope=envelope)])
    except PublishFailed as error:
        raise publish_refused(error) from None


async def verdict(
    publisher: Publisher,
    settings: Settings,
    models: ReadModels,
    who: Caller,
    command: Payload,
    accepted_status: int,
    model: type[BaseModel],
) -> JSONResponse:
    """Send a directory command and answer with the directory's verdict (see ``answer``)."""
    command_id = await send_command(publisher, settings, who, command)
    return answer(await outcome_of(models, command_id), command_id, accepted_status, model)


def answer(
    outcome: dict[str, Any] | None,
    command_id: UUID,
    accepted_status: int,
    model: type[BaseModel],
) -> JSONResponse:
    """The deciding service's verdict as HTTP: accepted (``model``, the route's documented
    answer), 422 with its reason, 409 for a lost race, or 202 if still open."""
    if outcome is None:
        return typed(CommandPending(command_id=command_id, detail="accepted; not decided yet"), 202)
    if outcome["outcome"] == "rejected":
        # A claim or transfer someone else's decision beat is a conflict, not bad input.
        conflict = bool((outcome["result"] or {}).get("conflict"))
        raise HTTPException(409 if conflict else 422, outcome["reason"])
    body = {"command_id": str(command_id), **(outcome["result"] or {})}
    return typed(model.model_validate(body), accepted_status)


def typed(body: BaseModel, status_code: int = 200) -> JSONResponse:
    """A documented model as a response with another status than the route's default."""
    return JSONResponse(body.model_dump(mode="json"), status_code=status_code)
