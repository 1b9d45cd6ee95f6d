"""Conversations as agents work them: the inbox, the history, claim, transfer, reply, close.

Admins see every conversation of their workspace; agents those of their groups and those
assigned to them. Commands go to the service that decides them (claims and transfers to the
group's assignment records, replies to the dispatcher, closes to the inbound service) and the
answer says what was decided when the read models show it within a few seconds.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import partial
from typing import Annotated, Any
from uuid import UUID, uuid4

from fastapi import APIRouter, Depends, Header, HTTPException, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict

from events.assignment import ClaimConversation, TransferConversation, group_key
from events.catalogue import (
    CONVERSATION_COMMANDS_TOPIC,
    HAND_OFF_REQUESTS_TOPIC,
    OUTBOUND_MESSAGES_TOPIC,
)
from events.conversation import CloseConversation
from events.outbound import OutboundMessageQueued, RetryOutboundMessage
from projections.queries import Caller, ReadModels
from services.conversations import permissions
from services.conversations.permissions import Asker, TransferTarget
from services.gateway import idempotency
from services.gateway.as_of import TimeMachine, as_of_moment, time_machine
from services.gateway.dependencies import (
    Publisher,
    admin,
    answer,
    asker,
    caller,
    conversation_facts,
    current_time,
    first,
    member_envelope,
    outcome_of,
    permitted,
    publish_envelope,
    publisher,
    read_models,
    reply_keys,
    send_record,
    settings,
    visible_conversation,
)
from services.gateway.idempotency import ReplyKeys
from services.gateway.inbox import described
from services.gateway.inputs import Identifier, Note, ReplyText, known_query_only
from services.gateway.problems import problem_responses
from services.gateway.responses import (
    CommandAccepted,
    CommandPending,
    Conversation,
    ConversationMoved,
    Conversations,
    History,
    Inbox,
    ReplyQueued,
)
from services.settings import Settings

router = APIRouter(
    tags=["conversations"],
    responses=problem_responses(401, 422, 503),
    dependencies=[Depends(known_query_only)],
)

Models = Annotated[ReadModels, Depends(read_models)]
Bus = Annotated[Publisher, Depends(publisher)]
Config = Annotated[Settings, Depends(settings)]
Member = Annotated[Caller, Depends(caller)]
Now = Annotated[datetime, Depends(current_time)]
PENDING: dict[int | str, dict[str, Any]] = {
    202: {"model": CommandPending, "description": "Sent; not decided within the wait."}
}
ON_OPEN_CONVERSATION = problem_responses(403, 404, 409)


class Reply(BaseModel):
    """Text to the customer (Meta's limit: 4096 characters; line breaks and tabs kept)."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"text": "Hola Carla, ¿en qué te ayudo?"}]}
    )

    text: ReplyText


class Transfer(BaseModel):
    """To one member (the conversation stays in its group) or to a group's rotation:
    exactly one of ``member_id`` and ``group_id``."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"member_id": "6f1f8c1e-2d3a-4c8e-9a4b-0b9f4a340d2e", "note": "billing"}]
        },
    )

    member_id: UUID | None = None
    group_id: UUID | None = None
    note: Note = ""


@router.get("/api/me/inbox", response_model=Inbox)
async def inbox(
    who: Member,
    models: Models,
    moment: Annotated[datetime | None, Depends(as_of_moment)],
    past: Annotated[TimeMachine, Depends(time_machine)],
) -> dict[str, Any]:
    """My open conversations (``assigned``), what waits in my groups' queues in the order it
    will be served (``queued``) and, for admins, every open conversation (``all``) and the
    workspace's queue (``workspace_queue``). Each item says: the last message, my unread
    count, since when it waits, when it closes by itself (``closes_at``) and whether the
    customer-service window is open (``service_window_open``, ``service_window_until``).

    With ``as_of``: my inbox as it was at that moment (whether I see the admins' lists is
    decided by my role now)."""
    if moment is None:
        return await inbox_of(models, who)
    async with past.at(who.workspace_id, moment) as then:
        return await inbox_of(then, who, moment)


async def inbox_of(models: ReadModels, who: Caller, now: datetime | None = None) -> dict[str, Any]:
    """The inbox the API answers and the agent suite shows, as of ``now`` (the clock's now
    by default; times left are counted from it)."""
    found: dict[str, Any] = dict(await models.inbox(who.workspace_id, who.member_id))
    # The rule reads the role only: no need to read the caller's groups. Who sees the
    # workspace queue (the admins) sees every open conversation too.
    if permissions.sees_workspace_queue(Asker(who.member_id, who.role)):
        found["all"] = await models.open_conversations(who.workspace_id)
        found["workspace_queue"] = await models.queue(who.workspace_id, None)
    moment = now or datetime.now(UTC)
    await described(models, who.workspace_id, who.member_id, found.values(), moment)
    return found


@router.get("/api/conversations", response_model=Conversations)
async def find_conversations(
    contact: Annotated[Identifier, Query(description="the customer's WhatsApp id")],
    who: Member,
    models: Models,
) -> dict[str, Any]:
    """The contact's conversations the caller may see, oldest first."""
    rows = await models.conversations_of_contact(who.workspace_id, contact)
    seen_by = await asker(models, who)
    return {
        "conversations": [
            row for row in rows if permissions.may_see(seen_by, conversation_facts(row))
        ]
    }


@router.get(
    "/api/conversations/{conversation_id}",
    response_model=Conversation,
    responses=problem_responses(404),
)
async def get_conversation(conversation_id: UUID, who: Member, models: Models) -> dict[str, Any]:
    """The conversation, who holds it, and what an inbox item says of it (see the inbox)."""
    return await described_conversation(models, who, conversation_id)


@router.get(
    "/api/conversations/{conversation_id}/history",
    response_model=History,
    responses=problem_responses(404),
)
async def get_history(conversation_id: UUID, who: Member, models: Models) -> dict[str, Any]:
    """Every line, bot turns, flow steps and assignment decisions (with their explanation)
    included."""
    row = await described_conversation(models, who, conversation_id)
    return {"conversation": row, "history": await models.history(conversation_id)}


async def described_conversation(
    models: ReadModels, who: Caller, conversation_id: UUID
) -> dict[str, Any]:
    rows = [await visible_conversation(models, who, conversation_id)]
    await described(models, who.workspace_id, who.member_id, [rows], datetime.now(UTC))
    return rows[0]


@router.post(
    "/api/conversations/{conversation_id}/claim",
    response_model=ConversationMoved,
    responses={**PENDING, **problem_responses(404, 409)},
)
async def claim(
    conversation_id: UUID, who: Member, models: Models, bus: Bus, config: Config
) -> JSONResponse:
    """Take a queued conversation. The first claim wins; later ones get 409."""
    row, _ = await permitted(models, who, conversation_id, permissions.claim)
    command = ClaimConversation(
        conversation_id=conversation_id, workspace_id=who.workspace_id, member_id=who.member_id
    )
    command_id = await send_to_group(bus, config, who, row, command)
    return answer(await outcome_of(models, command_id), command_id, 200, ConversationMoved)


@router.post(
    "/api/conversations/{conversation_id}/transfer",
    response_model=ConversationMoved,
    responses={**PENDING, **problem_responses(400), **ON_OPEN_CONVERSATION},
)
async def transfer(
    conversation_id: UUID, body: Transfer, who: Member, models: Models, bus: Bus, config: Config
) -> JSONResponse:
    """Hand the conversation to another member, or to another group's rotation."""
    target = await transfer_target(models, who, body)
    rule = partial(permissions.transfer, target=target)
    row, _ = await permitted(models, who, conversation_id, rule)
    command = TransferConversation(
        conversation_id=conversation_id,
        workspace_id=who.workspace_id,
        to_member_id=body.member_id,
        to_group_id=body.group_id,
        requested_by=who.member_id,
        note=body.note,
    )
    command_id = await send_to_group(bus, config, who, row, command)
    outcome = await outcome_of(models, command_id)
    if outcome is not None and outcome["outcome"] == "accepted":
        # The verdict is the transfer; the new holder is the next decision. Answer once the
        # read models show it, so the caller's next read agrees with the 200.
        await eventually_moved(models, who, conversation_id, body)
    return answer(outcome, command_id, 200, ConversationMoved)


async def transfer_target(models: ReadModels, who: Caller, body: Transfer) -> TransferTarget:
    """What the transfer names, and whether the read models know it to take conversations."""
    member_active = group_open = False
    if body.member_id is not None and body.group_id is None:
        member = await models.member(who.workspace_id, body.member_id)
        member_active = member is not None and bool(member["active"])
    if body.group_id is not None and body.member_id is None:
        group = await models.group(who.workspace_id, body.group_id)
        group_open = group is not None and group.get("deleted_at") is None
    return TransferTarget(body.member_id, body.group_id, member_active, group_open)


async def eventually_moved(
    models: ReadModels, who: Caller, conversation_id: UUID, body: Transfer
) -> None:
    async def moved() -> bool | None:
        found = await models.assignment(who.workspace_id, conversation_id)
        if found is None:
            return None
        if body.member_id is not None:
            arrived = found["assignee_id"] == body.member_id
        else:
            arrived = found["group_id"] == body.group_id and found["state"] != "released"
        return True if arrived else None

    await first(moved)


async def send_to_group(
    bus: Publisher,
    config: Settings,
    who: Caller,
    row: dict[str, Any],
    command: ClaimConversation | TransferConversation,
) -> UUID:
    """Claims and transfers go to the records of the group that holds the conversation, so
    its one decider orders them with the group's hand-offs."""
    return await send_record(
        bus,
        who,
        HAND_OFF_REQUESTS_TOPIC.qualified(config.topic_prefix),
        group_key(who.workspace_id, row.get("group_id")),
        command,
    )


@router.post(
    "/api/conversations/{conversation_id}/messages",
    status_code=202,
    response_model=ReplyQueued,
    responses=ON_OPEN_CONVERSATION,
)
async def reply(
    conversation_id: UUID,
    body: Reply,
    who: Member,
    models: Models,
    bus: Bus,
    config: Config,
    now: Now,
    keys: Annotated[ReplyKeys, Depends(reply_keys)],
    idempotency_key: Annotated[
        str | None,
        Header(
            alias=idempotency.HEADER,
            description="Any unique value per reply (a UUID): sending the same request again"
            " with the same key answers what the first answered and never sends the customer"
            " a second copy; the same key with another request is refused (422).",
            pattern=idempotency.KEY_PATTERN,
        ),
    ] = None,
) -> dict[str, Any]:
    """Queue a reply for the dispatcher; the history shows it at once, then its delivery.

    With an ``Idempotency-Key`` a retry of a request that timed out is safe (see
    ``services/gateway/idempotency.py``)."""
    if idempotency_key is None:
        row, _ = await permitted(models, who, conversation_id, permissions.reply)
        queued = await queued_reply(models, who, row, body.text, uuid4(), now)
        command_id = await send_record(
            bus,
            who,
            OUTBOUND_MESSAGES_TOPIC.qualified(config.topic_prefix),
            str(conversation_id),
            queued,
            occurred_at=now,
        )
        return {"command_id": str(command_id), "message_id": str(queued.message_id)}
    key = idempotency_key
    problem = idempotency.key_problem(key)
    if problem is not None:
        raise HTTPException(422, problem)
    request = idempotency.fingerprint(conversation_id, body.text)
    kept = await keys.find(who.workspace_id, who.member_id, key)
    match idempotency.verdict(kept, request):
        case idempotency.Verdict.OTHER_REQUEST:
            assert kept is not None
            raise HTTPException(422, idempotency.other_request_problem(key, kept))
        case idempotency.Verdict.ANSWERED:
            assert kept is not None
            return {"command_id": str(kept.command_id), "message_id": str(kept.message_id)}
        case _:
            pass
    # Not sent as far as anyone recorded: the member must (still) be allowed to reply.
    row, _ = await permitted(models, who, conversation_id, permissions.reply)
    if kept is None:
        message_id = idempotency.reply_message_id(who.workspace_id, who.member_id, key)
        queued = await queued_reply(models, who, row, body.text, message_id, now)
        command_id = idempotency.reply_command_id(who.workspace_id, who.member_id, key)
        envelope = member_envelope(who, str(conversation_id), queued, command_id, now)
        # Another request with this key (on any replica) may have been first: then its
        # record is the one published, and its body the one this request is judged by.
        kept = await keys.keep(who.workspace_id, who.member_id, key, request, envelope)
        if idempotency.verdict(kept, request) is idempotency.Verdict.OTHER_REQUEST:
            raise HTTPException(422, idempotency.other_request_problem(key, kept))
    envelope = keys.envelope(kept)
    await publish_envelope(bus, OUTBOUND_MESSAGES_TOPIC.qualified(config.topic_prefix), envelope)
    await keys.acknowledged(who.workspace_id, who.member_id, key)
    return {"command_id": str(kept.command_id), "message_id": str(kept.message_id)}


async def queued_reply(
    models: ReadModels,
    who: Caller,
    row: dict[str, Any],
    text: str,
    message_id: UUID,
    now: datetime,
) -> OutboundMessageQueued:
    return OutboundMessageQueued(
        message_id=message_id,
        conversation_id=row["conversation_id"],
        # Orders replies that share a timestamp; the history sorts by time first.
        sequence=1 + await models.line_count(row["conversation_id"], author_kind="member"),
        phone_number_id=row["phone_number_id"],
        to=row["contact_wa_id"],
        kind="text",
        text=text,
        options=[],
        list_button=None,
        template=None,
        author="member",
        author_id=str(who.member_id),
        queued_at=now,
    )


@router.post(
    "/api/conversations/{conversation_id}/close",
    status_code=202,
    response_model=CommandAccepted,
    responses=ON_OPEN_CONVERSATION,
)
async def close(
    conversation_id: UUID, who: Member, models: Models, bus: Bus, config: Config
) -> dict[str, Any]:
    """Close the conversation (reason ``agent``, or ``admin`` for an admin who does not hold
    it); the history and the inbox show it closed a moment later."""
    row, allowed = await permitted(models, who, conversation_id, permissions.close)
    command = CloseConversation(
        conversation_id=conversation_id,
        workspace_id=who.workspace_id,
        phone_number_id=row["phone_number_id"],
        contact_wa_id=row["contact_wa_id"],
        reason=allowed.reason,
    )
    command_id = await send_record(
        bus,
        who,
        CONVERSATION_COMMANDS_TOPIC.qualified(config.topic_prefix),
        f"{row['phone_number_id']}:{row['contact_wa_id']}",
        command,
    )
    return {"command_id": str(command_id)}


@router.post(
    "/api/conversations/{conversation_id}/messages/{message_id}/retry",
    status_code=202,
    response_model=CommandAccepted,
    responses=problem_responses(403, 404, 409),
)
async def retry_message(
    conversation_id: UUID,
    message_id: UUID,
    who: Annotated[Caller, Depends(admin)],
    models: Models,
    bus: Bus,
    config: Config,
) -> dict[str, Any]:
    """The explicit decision to send again a message that failed or whose outcome is unknown.

    WhatsApp has no idempotency key: a message whose send was cut short may have reached
    the customer, so only a person decides to risk a second copy.
    """
    status = await models.message_status(conversation_id, message_id)
    rule = partial(permissions.retry, message_id=message_id, message_status=status)
    await permitted(models, who, conversation_id, rule)
    retry = RetryOutboundMessage(
        message_id=message_id, conversation_id=conversation_id, requested_by=str(who.member_id)
    )
    command_id = await send_record(
        bus,
        who,
        OUTBOUND_MESSAGES_TOPIC.qualified(config.topic_prefix),
        str(conversation_id),
        retry,
    )
    return {"command_id": str(command_id)}
