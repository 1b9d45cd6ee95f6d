"""``switchboard inbox --member M``, ``roster --group G``, ``queue --group G``, each with an
optional ``--as-of T``: what the API answers, for an operator, now or at a past moment.

The operator names a member or a group, not a workspace: the workspace is the one it belongs
to. A member's inbox is the one the API shows that member (its own role decides whether the
admins' lists are in it); a group's roster and queue are shown as an admin sees them, a group
deleted since included. The answer is the API's JSON (the same response models), computed the
same way (``projections/as_of.py`` folds the events up to ``T``; times left are counted
from ``T``).
"""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import orjson
from psycopg_pool import AsyncConnectionPool
from pydantic import BaseModel, TypeAdapter, ValidationError

from projections.as_of import TopicsUnreadable, read_models_at
from projections.queries import Caller, ReadModels
from services.gateway.as_of import Rfc3339
from services.settings import Settings


class Refused(Exception):
    """What the operator asked for cannot be answered; the message says why."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def parse_moment(text: str | None, now: datetime) -> datetime | None:
    """``--as-of``: an RFC 3339 time with its offset, not after ``now``."""
    if text is None:
        return None
    try:
        moment = TypeAdapter(Rfc3339).validate_python(text)
    except ValidationError as error:
        problem = error.errors()[0]["msg"]
        raise Refused(
            f"--as-of {text!r} is not an RFC 3339 time with an offset: {problem}", 2
        ) from None
    if moment > now:
        raise Refused(
            f"--as-of {text} is in the future (now {now.isoformat()}): only what already"
            " happened can be shown",
            2,
        )
    return moment


def run(settings: Settings, what: str, subject: str, as_of: str | None) -> int:
    """Print the answer as JSON; exit 1 for an unknown member or group, 2 for bad input."""
    try:
        moment = parse_moment(as_of, datetime.now(UTC))
        try:
            subject_id = UUID(subject)
        except ValueError:
            raise Refused(f"{subject!r} is not an id", 2) from None
        answer = asyncio.run(_answer(settings, what, subject_id, moment))
    except Refused as refused:
        print(f"switchboard: {refused}", file=sys.stderr)
        return refused.code
    except TopicsUnreadable as error:
        print(f"switchboard: the past cannot be read now: {error}", file=sys.stderr)
        return 1
    print(orjson.dumps(answer, option=orjson.OPT_INDENT_2).decode())
    return 0


async def _answer(
    settings: Settings, what: str, subject: UUID, moment: datetime | None
) -> dict[str, Any]:
    pool = AsyncConnectionPool(
        settings.database().conninfo(), min_size=1, max_size=2, open=False, timeout=10
    )
    await pool.open(wait=True, timeout=30)
    try:
        live = ReadModels(pool, settings.schema("projections"))
        if what == "inbox":
            return await _inbox(settings, live, subject, moment)
        return await _group_view(settings, live, what, subject, moment)
    finally:
        await pool.close()


async def _inbox(
    settings: Settings, live: ReadModels, member_id: UUID, moment: datetime | None
) -> dict[str, Any]:
    from services.gateway.conversations_api import inbox_of
    from services.gateway.responses import Inbox

    workspace_id = await live.workspace_of(member_id=member_id)
    member = await live.member(workspace_id, member_id) if workspace_id else None
    if workspace_id is None or member is None:
        raise Refused(f"no member {member_id}", 1)
    who = Caller(member_id, workspace_id, member["role"], member["name"])
    if moment is None:
        return _as_api(Inbox, await inbox_of(live, who))
    async with read_models_at(settings, live.pool, workspace_id, moment) as then:
        return _as_api(Inbox, await inbox_of(then, who, moment))


async def _group_view(
    settings: Settings, live: ReadModels, what: str, group_id: UUID, moment: datetime | None
) -> dict[str, Any]:
    workspace_id = await live.workspace_of(group_id=group_id)
    if workspace_id is None:
        raise Refused(f"no group {group_id}", 1)
    if moment is None:
        return await _group_answer(live, what, workspace_id, group_id, "now")
    async with read_models_at(settings, live.pool, workspace_id, moment) as then:
        return await _group_answer(then, what, workspace_id, group_id, moment.isoformat())


async def _group_answer(
    models: ReadModels, what: str, workspace_id: UUID, group_id: UUID, when: str
) -> dict[str, Any]:
    from services.gateway.responses import GroupQueue, Roster

    group = await models.group(workspace_id, group_id)
    if group is None:
        raise Refused(f"group {group_id} did not exist yet at {when}", 1)
    if group.get("deleted_at") is not None:
        raise Refused(f"group {group_id} had been deleted at {group['deleted_at']} ({when})", 1)
    if what == "roster":
        return _as_api(
            Roster, {"group": group, "members": await models.roster(workspace_id, group_id)}
        )
    return _as_api(
        GroupQueue, {"group": group, "queue": await models.queue(workspace_id, group_id)}
    )


def _as_api(model: type[BaseModel], answer: dict[str, Any]) -> dict[str, Any]:
    """The answer as the API's JSON: the route's response model, serialised the same way."""
    dumped: dict[str, Any] = model.model_validate(answer).model_dump(mode="json")
    return dumped
