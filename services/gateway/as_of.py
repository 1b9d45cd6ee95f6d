"""``?as_of=<RFC 3339 time>`` on the inbox, a group's roster and its queue: the answer the
route gave at that moment, folded again from the events (``projections/as_of.py`` says which
time counts and how).

Who may ask is decided as now — the caller's token, workspace, role and groups in today's
read models, by the routes' own rules — and what the answer holds is the read models at
``as_of``. Answers relative to *now* (``closes_in_seconds``, ``service_window_open``) are
computed relative to ``as_of``. A moment in the future is refused (422: it has not
happened); one before the workspace existed finds nothing.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Annotated
from uuid import UUID

import anyio
from fastapi import HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from pydantic import AwareDatetime, BeforeValidator, WithJsonSchema
from pydantic_core import PydanticCustomError

from projections.as_of import TopicsUnreadable, read_models_at
from projections.queries import ReadModels
from runtime.outages import outage_of
from services.settings import Settings

RETRY_AFTER_SECONDS = 5
# Each answer folds the workspace's events into a scratch schema: a few at a time, the rest
# wait their turn rather than crowd the database the live routes need.
AT_ONCE = 2

AS_OF_DESCRIPTION = (
    "An RFC 3339 time with its offset (e.g. `2026-11-29T14:02:00Z`): answer what this route"
    " answered at that moment, folded again from the events (records that had reached Kafka"
    " by then, by their record time; millisecond resolution). Times left"
    " (`closes_in_seconds`, `service_window_open`) are counted from it. A moment in the"
    " future is refused (422); before the workspace existed there is nothing."
)


# RFC 3339's date-time, and nothing else pydantic would also take as a time (a number of
# seconds, a space for the ``T``): ``as_of=1.5`` is a typo, not 1970.
RFC_3339_PATTERN = r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$"
RFC_3339 = re.compile(RFC_3339_PATTERN, re.ASCII)


def _rfc_3339(value: object) -> object:
    if isinstance(value, str) and RFC_3339.fullmatch(value) is None:
        raise PydanticCustomError(
            "rfc_3339",
            "must be an RFC 3339 time with its offset, such as 2026-11-29T14:02:00Z",
        )
    return value


# The OpenAPI document states the rule as the other inputs do (a ``pattern``).
Rfc3339 = Annotated[
    AwareDatetime,
    BeforeValidator(_rfc_3339),
    WithJsonSchema({"type": "string", "format": "date-time", "pattern": RFC_3339_PATTERN}),
]


def as_of_moment(
    as_of: Annotated[Rfc3339 | None, Query(description=AS_OF_DESCRIPTION)] = None,
) -> datetime | None:
    """The moment asked for, if any; 422 naming ``query.as_of`` for one still to come."""
    if as_of is None:
        return None
    now = datetime.now(UTC)
    if as_of > now:
        raise RequestValidationError(
            [
                {
                    "type": "future_moment",
                    "loc": ("query", "as_of"),
                    "msg": f"is in the future (the server's time is {now.isoformat()}):"
                    " only what already happened can be shown",
                }
            ]
        )
    return as_of


class TimeMachine:
    """Read models of the past for the gateway's routes, a few folds at a time."""

    def __init__(self, settings: Settings, live: ReadModels) -> None:
        self.settings = settings
        self.live = live
        self.turns = anyio.Semaphore(AT_ONCE)

    @asynccontextmanager
    async def at(self, workspace_id: UUID, moment: datetime) -> AsyncIterator[ReadModels]:
        """The workspace's read models at ``moment`` (503 while Kafka or the database is
        away, as every route)."""
        async with self.turns:
            try:
                async with read_models_at(
                    self.settings, self.live.pool, workspace_id, moment
                ) as then:
                    yield then
            except TopicsUnreadable as error:
                raise _unavailable(f"the past cannot be read now ({error}); retry later") from None
            except HTTPException:
                raise
            except Exception as error:
                away = outage_of(error)
                if away is None:
                    raise
                raise _unavailable(f"the {away} is unavailable; retry later") from None


def _unavailable(detail: str) -> HTTPException:
    return HTTPException(503, detail, headers={"Retry-After": str(RETRY_AFTER_SECONDS)})


def time_machine(request: Request) -> TimeMachine:
    """The gateway's time machine, made on first use from what its lifespan opened (the read
    models' pool and the settings), so the composition root needs no line for it."""
    state = request.app.state
    machine: TimeMachine | None = getattr(state, "time_machine", None)
    if machine is None:
        machine = TimeMachine(state.settings, state.read_models)
        state.time_machine = machine
    return machine
