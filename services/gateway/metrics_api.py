"""Service metrics: ``GET /api/metrics`` (JSON, or CSV with ``?format=csv``) and
``GET /api/metrics.csv``, per local day, group and member, from the metrics projection.

Admins see the whole workspace (``member=`` and ``group=`` narrow it); an agent sees the rows
of its own member id only (asking for another member's is 403). Days are the workspace's
local days (its time zone); ``from`` and ``to`` are both included, at most
:data:`MAX_DAYS` apart. Without them: the last seven days, today included.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from projections.metrics.fold import (
    FIGURE_NAMES,
    NO_MEMBER,
    NOT_HANDED_OFF,
    WORKSPACE_QUEUE,
    zone_of,
)
from projections.metrics.queries import MetricsNotReady, MetricsReads
from projections.queries import Caller, ReadModels
from services.gateway.dependencies import RETRY_AFTER_SECONDS, caller, read_models
from services.gateway.inputs import known_query_only
from services.gateway.problems import problem_responses

MAX_DAYS = 366
DEFAULT_DAYS = 7

router = APIRouter(
    tags=["metrics"],
    responses=problem_responses(401, 403, 422, 503),
    dependencies=[Depends(known_query_only)],
)

Queue = Literal["group", "workspace", "none"]


class Figures(BaseModel):
    """The figures of a row (or of every row together). Durations are in seconds; each
    average is over the conversations that reached that step (null when none did)."""

    handed_off: int = Field(description="conversations handed off to agents (on that day)")
    queue_waits: int = Field(description="first assignments (hand-off → assigned)")
    queue_wait_seconds: float = Field(description="their waits, summed")
    average_queue_wait_seconds: float | None
    first_responses: int = Field(description="first replies by a member after an assignment")
    first_response_seconds: float = Field(description="assigned → first reply, summed")
    average_first_response_seconds: float | None
    resolutions: int = Field(description="handed-off conversations closed (hand-off → close)")
    resolution_seconds: float = Field(description="their durations, summed")
    average_resolution_seconds: float | None
    closed_by_agent: int = Field(description="closed by the member holding it")
    closed_by_admin: int = Field(description="closed by an admin who did not hold it")
    closed_by_flow: int = Field(description="closed by the flow's end")
    expired: int = Field(description="closed by the expiry timer (24 h, or the flow's)")
    messages_in: int = Field(description="the customer's messages")
    messages_out: int = Field(description="members' replies")
    bot_messages_out: int = Field(description="the bot's messages")


class MetricsRow(Figures):
    day: date = Field(description="the workspace's local day")
    queue: Queue = Field(
        description="`group`: handed off to `group_id`; `workspace`: to the workspace queue;"
        " `none`: never handed off (the bot alone served it)"
    )
    group_id: UUID | None
    group_name: str | None = Field(description="the group's current name")
    member_id: UUID | None = Field(
        description="the member first assigned (a reply: the member who sent it)"
    )
    member_name: str | None


class Metrics(BaseModel):
    model_config = ConfigDict(
        populate_by_name=True,
        json_schema_extra={
            "examples": [
                {
                    "time_zone": "America/Bogota",
                    "from": "2027-03-01",
                    "to": "2027-03-07",
                    "rows": [],
                    "totals": dict.fromkeys(FIGURE_NAMES, 0)
                    | {
                        "average_queue_wait_seconds": None,
                        "average_first_response_seconds": None,
                        "average_resolution_seconds": None,
                    },
                }
            ]
        },
    )

    time_zone: str = Field(description="the workspace's time zone: what a day is")
    first: date = Field(alias="from")
    last: date = Field(alias="to")
    rows: list[MetricsRow]
    totals: Figures


CSV_CONTENT = {
    "text/csv": {
        "schema": {"type": "string"},
        "example": "day,queue,group_id,group_name,member_id,member_name,handed_off,...\r\n",
    }
}


@dataclass(frozen=True)
class Asked:
    first: date | None = None
    last: date | None = None
    group: UUID | None = None
    member: UUID | None = None


def asked(first: str | None, last: str | None, group: UUID | None, member: UUID | None) -> Asked:
    """The query's days read (422 naming the parameter for a day that does not exist)."""
    return Asked(_day(first, "from"), _day(last, "to"), group, member)


def _day(value: str | None, name: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise RequestValidationError(
            [
                {
                    "type": "value_error",
                    "loc": ("query", name),
                    "msg": f"{name} is not a day of the calendar (YYYY-MM-DD): {value[:40]!r}",
                }
            ]
        ) from None


def metrics_reads(request: Request) -> MetricsReads:
    found: MetricsReads = request.app.state.metrics
    return found


async def report(
    reads: MetricsReads, models: ReadModels, who: Caller, asked: Asked | None = None
) -> Metrics:
    """The metrics ``who`` may see; shared by the API and the suite's metrics page."""
    asked = asked or Asked()
    if who.role != "admin":
        if asked.member is not None and asked.member != who.member_id:
            raise HTTPException(403, "an agent sees its own metrics only: leave out member=")
        asked = Asked(asked.first, asked.last, asked.group, who.member_id)
    try:
        time_zone = await reads.time_zone(who.workspace_id)
        first, last = _period(asked, time_zone)
        found = await reads.days(
            who.workspace_id,
            first,
            last,
            group=str(asked.group) if asked.group is not None else None,
            member=str(asked.member) if asked.member is not None else None,
        )
    except MetricsNotReady:
        raise HTTPException(
            503,
            "the metrics projection has not started yet; retry later",
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        ) from None
    groups = {str(g["group_id"]): g["name"] for g in await models.groups(who.workspace_id)}
    members = {str(m["member_id"]): m["name"] for m in await models.members(who.workspace_id)}
    rows = [_row(found_row, groups, members) for found_row in found]
    sums = {name: sum(row[name] for row in found) for name in FIGURE_NAMES}
    return Metrics(
        time_zone=time_zone,
        first=first,
        last=last,
        rows=rows,
        totals=Figures(**_with_averages(sums)),
    )


def _period(asked: Asked, time_zone: str) -> tuple[date, date]:
    today = datetime.now(UTC).astimezone(zone_of(time_zone)).date()
    try:
        last = asked.last or (
            asked.first + timedelta(days=DEFAULT_DAYS - 1) if asked.first is not None else today
        )
        first = asked.first or last - timedelta(days=DEFAULT_DAYS - 1)
    except OverflowError:  # a default period past year 9999 or before year 1
        raise RequestValidationError(
            [
                {
                    "type": "value_error",
                    "loc": ("query", "from" if asked.first is not None else "to"),
                    "msg": "give both from and to: a week from this day is not a date",
                }
            ]
        ) from None
    if first > last:
        raise RequestValidationError(
            [
                {
                    "type": "value_error",
                    "loc": ("query", "from"),
                    "msg": f"from ({first}) is after to ({last})",
                }
            ]
        )
    if (last - first).days + 1 > MAX_DAYS:
        raise RequestValidationError(
            [
                {
                    "type": "value_error",
                    "loc": ("query", "to"),
                    "msg": f"at most {MAX_DAYS} days at once; {first} to {last} is"
                    f" {(last - first).days + 1}",
                }
            ]
        )
    return first, last


def _row(found: dict[str, Any], groups: dict[str, str], members: dict[str, str]) -> MetricsRow:
    group_key, member_key = found["group_key"], found["member_key"]
    queue: Queue
    if group_key == WORKSPACE_QUEUE:
        queue, group_id = "workspace", None
    elif group_key == NOT_HANDED_OFF:
        queue, group_id = "none", None
    else:
        queue, group_id = "group", UUID(group_key)
    member_id = UUID(member_key) if member_key != NO_MEMBER else None
    return MetricsRow(
        day=found["day"],
        queue=queue,
        group_id=group_id,
        group_name=groups.get(group_key),
        member_id=member_id,
        member_name=members.get(member_key),
        **_with_averages({name: found[name] for name in FIGURE_NAMES}),
    )


def _with_averages(sums: dict[str, Any]) -> dict[str, Any]:
    figures: dict[str, Any] = {
        name: float(value) if name.endswith("_seconds") else int(value)
        for name, value in sums.items()
    }
    for count, seconds in (
        ("queue_waits", "queue_wait_seconds"),
        ("first_responses", "first_response_seconds"),
        ("resolutions", "resolution_seconds"),
    ):
        reached: int = figures[count]
        total: float = figures[seconds]
        figures[f"average_{seconds}"] = total / reached if reached else None
    return figures


CSV_COLUMNS = (
    "day",
    "queue",
    "group_id",
    "group_name",
    "member_id",
    "member_name",
    *(name for name in Figures.model_fields),
)


def as_csv(metrics: Metrics) -> str:
    """One line per row, the columns of the JSON rows; names that a spreadsheet would read as
    a formula (``=``, ``+``, ``-``, ``@``) are prefixed with ``'`` (CSV injection)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for row in metrics.rows:
        values = row.model_dump()
        writer.writerow([_cell(values[column]) for column in CSV_COLUMNS])
    return out.getvalue()


def _cell(value: object) -> object:
    if value is None:
        return ""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def _csv_response(metrics: Metrics) -> Response:
    return Response(
        as_csv(metrics),
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": (
                f'attachment; filename="metrics-{metrics.first}-{metrics.last}.csv"'
            )
        },
    )


# Days as the API writes them, and nothing else (pydantic's lax dates would also take a
# number of seconds since 1970, which no caller means).
DAY_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
From = Annotated[
    str | None,
    Query(
        alias="from",
        pattern=DAY_PATTERN,
        json_schema_extra={"format": "date"},
        description="first local day (YYYY-MM-DD); default: 6 days before `to`",
    ),
]
To = Annotated[
    str | None,
    Query(
        pattern=DAY_PATTERN,
        json_schema_extra={"format": "date"},
        description="last local day, included; default: today (or `from` + 6)",
    ),
]
Group = Annotated[UUID | None, Query(description="one group's rows only")]
MemberId = Annotated[
    UUID | None, Query(description="one member's rows only (an agent: only its own)")
]


@router.get(
    "/api/metrics",
    response_model=Metrics,
    responses={200: {"content": CSV_CONTENT, "description": "JSON, or CSV with `format=csv`"}},
)
async def metrics(
    who: Annotated[Caller, Depends(caller)],
    models: Annotated[ReadModels, Depends(read_models)],
    reads: Annotated[MetricsReads, Depends(metrics_reads)],
    first: From = None,
    to: To = None,
    group: Group = None,
    member: MemberId = None,
    format: Annotated[
        Literal["json", "csv"], Query(description="`csv`: the same rows as CSV")
    ] = "json",
) -> Response:
    """Service metrics per local day, group and member: hand-offs, time waiting in queue,
    first response time, resolution time, closes by agent, admin, flow and expiry, and
    messages in and out."""
    found = await report(reads, models, who, asked(first, to, group, member))
    if format == "csv":
        return _csv_response(found)
    return JSONResponse(found.model_dump(mode="json", by_alias=True))


@router.get(
    "/api/metrics.csv",
    response_class=Response,
    responses={200: {"content": CSV_CONTENT, "description": "the rows of `/api/metrics`"}},
)
async def metrics_csv(
    who: Annotated[Caller, Depends(caller)],
    models: Annotated[ReadModels, Depends(read_models)],
    reads: Annotated[MetricsReads, Depends(metrics_reads)],
    first: From = None,
    to: To = None,
    group: Group = None,
    member: MemberId = None,
) -> Response:
    """The rows of ``GET /api/metrics`` as CSV (a header line, then one line per row)."""
    return _csv_response(await report(reads, models, who, asked(first, to, group, member)))
