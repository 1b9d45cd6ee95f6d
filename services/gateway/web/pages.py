"""The agent suite's pages: server-rendered for a fast first paint, refreshed in parts.

Every page needs a signed-in browser (``session.py``); without one it redirects to the
sign-in page. Pages read the same read models as the JSON API, through the same functions
(``inbox_of``, ``described_conversation``), and every write goes through the JSON API from
the page's scripts. ``/ui/...`` answers the fragments the scripts swap in when the stream says
something changed (401 instead of a redirect: a script decides where to go).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qs, quote, urlencode
from uuid import UUID
from zoneinfo import ZoneInfo

import yaml
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.types import Scope

from events.canned_responses import VARIABLES
from events.catalogue import TOPICS
from projections.queries import Caller, ReadModels
from services.conversations import permissions
from services.conversations.permissions import Allowed, Refused
from services.gateway import metrics_api
from services.gateway.conversations_api import described_conversation, inbox_of
from services.gateway.dependencies import asker, conversation_facts, read_models, session_codec
from services.gateway.web import formatting
from services.gateway.web.charts import charts_for, minutes
from services.gateway.web.diagram import BOX_HEIGHT, BOX_WIDTH, layout
from services.gateway.web.session import (
    COOKIE,
    Session,
    SessionCodec,
    clear_cookie,
    cross_site_problem,
    csrf_problem,
)

HERE = Path(__file__).parent
STATIC = HERE / "static"
templates = Jinja2Templates(directory=HERE / "templates")
templates.env.globals.update(
    ticks=formatting.TICKS, box_width=BOX_WIDTH, box_height=BOX_HEIGHT, preview=formatting.preview
)


def _to_uuid(value: object) -> UUID | None:
    """History content keeps ids as text; the pages' maps are keyed by UUID."""
    try:
        return value if isinstance(value, UUID) else UUID(str(value))
    except ValueError:
        return None


templates.env.filters["to_uuid"] = _to_uuid
router = APIRouter(include_in_schema=False)
Models = Annotated[ReadModels, Depends(read_models)]
Codec = Annotated[SessionCodec, Depends(session_codec)]

TABS = ("mine", "queue", "all", "workspace")
TAB_LISTS = {"mine": "assigned", "queue": "queued", "all": "all", "workspace": "workspace_queue"}
# What the event stream may name: every event type of the catalogue (EventSource needs a
# listener per event name).
STREAM_KINDS = sorted({payload.event_type for topic in TOPICS for payload in topic.carries})
EXAMPLE_FLOW = """\
name: Support
start: ask
blocks:
  - id: ask
    type: question
    text: "How can we help?"
    variable: topic
    buttons:
      - {id: agent, title: Talk to someone}
      - {id: hours, title: Opening hours}
    next: route
  - id: route
    type: condition
    rules:
      - if: [{variable: topic, equals: agent}]
        next: agent
    default: hours
  - id: agent
    type: connect_to_agent
    rotation: no_owner
    text: "Connecting you with an agent."
  - id: hours
    type: end
    text: "We are open 8:00 to 18:00, Monday to Friday."
"""


class SuiteFiles(StaticFiles):
    """The suite's static files. A URL with ``?v=`` (the pages add the files' digest to every
    URL, the modules' imports through an import map) never changes meaning: browsers keep it
    for good. Without it, they check again each time."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        versioned = b"v=" in scope.get("query_string", b"")
        response.headers["Cache-Control"] = (
            "public, max-age=31536000, immutable" if versioned else "no-cache"
        )
        return response


class SignInRequired(Exception):
    """No valid session: pages redirect to sign-in, fragments answer 401."""


class AdminsOnly(Exception):
    """An agent opened an admin page."""


@dataclass(frozen=True)
class Visit:
    """A signed-in browser's request: the member, its session and what every page shows."""

    caller: Caller
    session: Session
    me: dict[str, Any]
    workspace: dict[str, Any]
    zone: ZoneInfo
    now: datetime
    # Where the page's live stream starts: the change feed's end when the page was read, taken
    # before anything else, so a change projected while the page renders or before the
    # browser opens its stream is still delivered (and refreshes what the page shows).
    stream_after: int


async def visit(request: Request, models: Models, codec: Codec) -> Visit:
    session = codec.read(request.cookies.get(COOKIE))
    if session is None:
        raise SignInRequired
    caller = await models.session_caller(
        session.workspace_id, session.member_id, session.credential_issued_at
    )
    if caller is None:
        raise SignInRequired
    stream_after = await models.last_change_seq(caller.workspace_id)
    me = await models.member(caller.workspace_id, caller.member_id)
    workspace = await models.workspace(caller.workspace_id) or {
        "name": "",
        "time_zone": "UTC",
    }
    assert me is not None
    return Visit(
        caller,
        session,
        me,
        workspace,
        _zone(workspace["time_zone"]),
        datetime.now(UTC),
        stream_after,
    )


async def admin_visit(current: Annotated[Visit, Depends(visit)]) -> Visit:
    if current.caller.role != "admin":
        raise AdminsOnly
    return current


Visitor = Annotated[Visit, Depends(visit)]
Admin = Annotated[Visit, Depends(admin_visit)]


def install(app: FastAPI, static_version: str) -> None:
    """Add the suite to the gateway: its routes, its static files and its redirects."""
    templates.env.globals["static_version"] = static_version
    # The import map gives each module's imports the versioned URL too.
    templates.env.globals["module_map"] = {
        f"/static/{path.name}": f"/static/{path.name}?v={static_version}"
        for path in sorted(STATIC.glob("*.js"))
    }
    app.mount("/static", SuiteFiles(directory=STATIC), name="static")
    app.include_router(router)
    app.add_exception_handler(SignInRequired, _sign_in_first)
    app.add_exception_handler(AdminsOnly, _admins_only)


async def _sign_in_first(request: Request, _: Exception) -> Response:
    if request.url.path.startswith("/ui/"):
        return HTMLResponse("sign in again", 401)
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/sign-in?next={quote(target, safe='')}", 303)


async def _admins_only(request: Request, _: Exception) -> Response:
    return templates.TemplateResponse(
        request,
        "message.html",
        {"title": "Admins only", "message": "This page is for the workspace's admins."},
        status_code=403,
    )


def page(request: Request, current: Visit, name: str, **values: Any) -> HTMLResponse:
    """Render ``name`` with what every page needs (the member, the clock, the CSRF token)."""
    return templates.TemplateResponse(
        request,
        name,
        {
            "me": current.me,
            "workspace": current.workspace,
            "csrf": current.session.csrf,
            "is_admin": current.caller.role == "admin",
            "stream_kinds": STREAM_KINDS,
            "stream_after": current.stream_after,
            "clock": lambda moment: formatting.clock(moment, current.zone, current.now),
            "since": lambda moment: formatting.since(moment, current.now),
            "until": lambda moment: formatting.until(moment, current.now),
            "now": current.now,
            **values,
        },
    )


# -- signing in and out ------------------------------------------------------------------


@router.get("/sign-in", response_class=HTMLResponse)
async def sign_in_page(request: Request, models: Models, codec: Codec, next: str = "/") -> Response:
    session = codec.read(request.cookies.get(COOKIE))
    if session is not None and await models.session_caller(
        session.workspace_id, session.member_id, session.credential_issued_at
    ):
        return RedirectResponse(_safe_next(next), 303)
    return templates.TemplateResponse(request, "sign_in.html", {"next": _safe_next(next)})


@router.post("/sign-in")
async def sign_in(request: Request, models: Models, codec: Codec) -> Response:
    """The token is checked once; the cookie names the member, never the token."""
    form = await _form(request)
    target = _safe_next(form.get("next", "/"))
    problem = cross_site_problem(request)
    if problem is not None:
        return templates.TemplateResponse(
            request, "sign_in.html", {"next": target, "error": problem}, status_code=403
        )
    token = form.get("token", "").strip()
    found = await models.caller(token) if token else None
    if found is None:
        return templates.TemplateResponse(
            request,
            "sign_in.html",
            {"next": target, "error": "That token is unknown, or its member was deactivated."},
            status_code=401,
        )
    assert found.credential_issued_at is not None  # a token lookup always says when
    _, value = codec.issue(found.member_id, found.workspace_id, found.credential_issued_at)
    response = RedirectResponse(target, 303)
    codec.set_cookie(request, response, value)
    return response


@router.post("/sign-out")
async def sign_out(request: Request, codec: Codec) -> Response:
    form = await _form(request)
    session = codec.read(request.cookies.get(COOKIE))
    if session is not None:
        problem = csrf_problem(request, session, form.get("csrf"))
        if problem is not None:
            raise HTTPException(403, problem)
    response = RedirectResponse("/sign-in", 303)
    clear_cookie(request, response)
    return response


# -- the inbox and a conversation --------------------------------------------------------


@router.get("/", response_class=HTMLResponse)
async def inbox_page(
    request: Request, current: Visitor, models: Models, tab: str = "mine"
) -> HTMLResponse:
    return page(
        request, current, "inbox.html", **await _inbox(models, current, tab), conversation=None
    )


@router.get("/conversations/{conversation_id}", response_class=HTMLResponse)
async def conversation_page(
    request: Request, conversation_id: UUID, current: Visitor, models: Models, tab: str = "mine"
) -> HTMLResponse:
    inbox = await _inbox(models, current, tab, conversation_id)
    try:
        conversation = await _conversation(models, current, conversation_id)
    except HTTPException as error:
        if error.status_code != 404:
            raise
        return page(request, current, "inbox.html", **inbox, conversation=None, missing=True)
    return page(request, current, "inbox.html", **inbox, **conversation)


@router.get("/ui/inbox", response_class=HTMLResponse)
async def inbox_fragment(
    request: Request,
    current: Visitor,
    models: Models,
    tab: str = "mine",
    open: Annotated[UUID | None, Query()] = None,
) -> HTMLResponse:
    return page(request, current, "_inbox.html", **await _inbox(models, current, tab, open))


@router.get("/ui/conversations/{conversation_id}", response_class=HTMLResponse)
async def conversation_fragment(
    request: Request, conversation_id: UUID, current: Visitor, models: Models
) -> HTMLResponse:
    context = await _conversation(models, current, conversation_id)
    return page(request, current, "_conversation.html", **context)


async def _inbox(
    models: ReadModels, current: Visit, tab: str, open_id: UUID | None = None
) -> dict[str, Any]:
    found = await inbox_of(models, current.caller)
    tabs = [t for t in TABS if TAB_LISTS[t] in found]
    if tab not in tabs:
        tab = "mine"
    mine_unread = sum(item["unread"] for item in found["assigned"])
    return {
        "tab": tab,
        "tabs": tabs,
        "lists": {t: found[TAB_LISTS[t]] for t in tabs},
        "items": found[TAB_LISTS[tab]],
        "open_id": open_id,
        # The tab title's count: unread customer messages in my conversations, and what waits
        # in my groups' queues.
        "attention": mine_unread + len(found["queued"]),
    }


async def _conversation(
    models: ReadModels, current: Visit, conversation_id: UUID
) -> dict[str, Any]:
    who = current.caller
    row = await described_conversation(models, who, conversation_id)
    history = [line for line in await models.history(conversation_id) if line["kind"] != "status"]
    members = {m["member_id"]: m for m in await models.members(who.workspace_id)}
    groups = await models.groups(who.workspace_id)
    flows = {f["flow_id"]: f for f in await models.flows(who.workspace_id)}
    # What the page offers is what the API's rules allow (services/conversations/permissions).
    facts = conversation_facts(row)
    me = await asker(models, who)
    cid = row["conversation_id"]
    return {
        "conversation": row,
        "history": history,
        # A reply quotes the message it answers.
        "by_wamid": {line["wamid"]: line for line in history if line.get("wamid")},
        "members": members,
        "groups": groups,
        "group_names": {g["group_id"]: g["name"] for g in groups},
        "flows": flows,
        "holds": row.get("assignee_id") == who.member_id,
        "can_act": isinstance(permissions.close(me, facts, cid), Allowed),
        "can_claim": isinstance(permissions.claim(me, facts, cid), Allowed),
        "reply_blocked": reply_blocked(
            row,
            permissions.reply(me, facts, cid),
            members,
            current.zone,
            current.now,
        ),
    }


def reply_blocked(
    row: dict[str, Any],
    verdict: Allowed | Refused,
    members: dict[UUID, dict[str, Any]],
    zone: ZoneInfo,
    now: datetime,
) -> str | None:
    """Why the reply box is disabled, in words (None: it is enabled): the API's reply rule
    (``verdict``), said for the state the conversation is in, and WhatsApp's customer-service
    window, which the dispatcher would refuse free text outside of."""
    if isinstance(verdict, Refused):
        if row["status"] != "open":
            return "This conversation is closed."
        state = row.get("assignment_state")
        if state == "queued":
            return "This conversation waits in a queue: claim it to reply."
        if state == "assigned":
            holder = members.get(row["assignee_id"])
            name = holder["name"] if holder else "another member"
            return f"Only {name}, who holds this conversation, or an admin can reply."
        if state is None:
            return "The bot is still talking with the customer: it has not handed over yet."
        return f"You cannot reply: {verdict.reason}."
    if not row["service_window_open"]:
        if row["service_window_until"] is None:
            return "The customer has not written yet: WhatsApp only accepts templates."
        closed_at = formatting.clock(row["service_window_until"], zone, now)
        return (
            f"The 24-hour customer-service window closed at {closed_at}: WhatsApp only accepts"
            " templates until the customer writes again."
        )
    return None


# -- admin pages -------------------------------------------------------------------------


@router.get("/admin/members", response_class=HTMLResponse)
async def members_page(request: Request, current: Admin, models: Models) -> HTMLResponse:
    workspace_id = current.caller.workspace_id
    groups = {g["group_id"]: g["name"] for g in await models.groups(workspace_id)}
    return page(
        request,
        current,
        "admin_members.html",
        members=await models.members(workspace_id),
        group_names=groups,
        section="members",
    )


@router.get("/admin/groups", response_class=HTMLResponse)
async def groups_page(request: Request, current: Admin, models: Models) -> HTMLResponse:
    workspace_id = current.caller.workspace_id
    groups = await models.groups(workspace_id)
    queues = {g["group_id"]: len(await models.queue(workspace_id, g["group_id"])) for g in groups}
    return page(
        request,
        current,
        "admin_groups.html",
        groups=groups,
        queues=queues,
        workspace_queue=await models.queue(workspace_id, None),
        section="groups",
    )


@router.get("/admin/groups/{group_id}", response_class=HTMLResponse)
async def group_page(
    request: Request, group_id: UUID, current: Admin, models: Models
) -> HTMLResponse:
    workspace_id = current.caller.workspace_id
    group = await models.group(workspace_id, group_id)
    if group is None or group.get("deleted_at") is not None:
        return _missing(request, current, "No such group", "It was deleted, or never existed.")
    members = await models.members(workspace_id)
    return page(
        request,
        current,
        "admin_group.html",
        group=group,
        roster=await models.roster(workspace_id, group_id),
        queue=await models.queue(workspace_id, group_id),
        candidates=[
            m for m in members if m["active"] and m["member_id"] not in group["member_ids"]
        ],
        section="groups",
    )


@router.get("/admin/flows", response_class=HTMLResponse)
async def flows_page(request: Request, current: Admin, models: Models) -> HTMLResponse:
    return page(
        request,
        current,
        "admin_flows.html",
        flows=await models.flows(current.caller.workspace_id),
        section="flows",
    )


@router.get("/admin/flows/new", response_class=HTMLResponse)
async def new_flow_page(request: Request, current: Admin) -> HTMLResponse:
    return page(
        request,
        current,
        "admin_flow.html",
        flow=None,
        versions=[],
        version=None,
        source=EXAMPLE_FLOW,
        diagram=None,
        section="flows",
    )


@router.get("/admin/flows/{flow_id}", response_class=HTMLResponse)
async def flow_page(
    request: Request,
    flow_id: UUID,
    current: Admin,
    models: Models,
    version: Annotated[int | None, Query(ge=1)] = None,
) -> HTMLResponse:
    workspace_id = current.caller.workspace_id
    versions = await models.flow_versions(workspace_id, flow_id)
    if not versions:
        return _missing(request, current, "No such flow", "No flow has this id here.")
    chosen = next((v for v in versions if v["version"] == version), versions[-1])
    flow = next((f for f in await models.flows(workspace_id) if f["flow_id"] == flow_id), None)
    return page(
        request,
        current,
        "admin_flow.html",
        flow=flow,
        flow_id=flow_id,
        versions=versions,
        version=chosen,
        source=flow_source(flow_id, chosen["definition"]),
        diagram=layout(chosen["definition"]),
        section="flows",
    )


@router.get("/admin/metrics", response_class=HTMLResponse)
async def metrics_page(
    request: Request,
    current: Admin,
    models: Models,
    first: Annotated[str | None, Query(alias="from")] = None,
    to: str | None = None,
    group: str | None = None,
    member: str | None = None,
) -> HTMLResponse:
    """Service metrics with charts: the period, group and member chosen in a plain GET form
    (so a view can be bookmarked); the figures are the API's (``metrics_api.report``)."""
    workspace_id = current.caller.workspace_id
    problem: str | None = None
    found = None
    try:
        asked = metrics_api.Asked(
            first=_day(first, "from"),
            last=_day(to, "to"),
            group=_id(group, "group"),
            member=_id(member, "member"),
        )
        found = await metrics_api.report(request.app.state.metrics, models, current.caller, asked)
    except ValueError as error:
        problem = str(error)
    except RequestValidationError as error:
        problem = "; ".join(str(e.get("msg")) for e in error.errors())
    except HTTPException as error:
        problem = str(error.detail)
    rows = [row.model_dump() for row in found.rows] if found is not None else []
    return page(
        request,
        current,
        "admin_metrics.html",
        metrics=found,
        rows=rows,
        charts=charts_for(rows, found.first, found.last) if found is not None else [],
        problem=problem,
        chosen={"from": first or "", "to": to or "", "group": group or "", "member": member or ""},
        csv_query=_csv_query(found, group, member),
        groups=await models.groups(workspace_id),
        members=await models.members(workspace_id),
        duration=minutes,
        section="metrics",
    )


def _csv_query(found: metrics_api.Metrics | None, group: str | None, member: str | None) -> str:
    """The CSV export of what the page shows (the period it settled on, the same filters)."""
    if found is None:
        return ""
    chosen = {"from": found.first, "to": found.last, "group": group, "member": member}
    return urlencode({name: value for name, value in chosen.items() if value})


def _day(value: str | None, name: str) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{name} is not a day (YYYY-MM-DD): {value[:40]!r}") from None


def _id(value: str | None, name: str) -> UUID | None:
    if not value:
        return None
    try:
        return UUID(value)
    except ValueError:
        raise ValueError(f"{name} is not an id: {value[:40]!r}") from None


@router.get("/admin/numbers", response_class=HTMLResponse)
async def numbers_page(request: Request, current: Admin, models: Models) -> HTMLResponse:
    return page(
        request,
        current,
        "admin_numbers.html",
        flows=await models.flows(current.caller.workspace_id),
        section="numbers",
    )


@router.get("/admin/canned-responses", response_class=HTMLResponse)
async def canned_responses_page(request: Request, current: Admin, models: Models) -> HTMLResponse:
    return page(
        request,
        current,
        "admin_canned_responses.html",
        canned_responses=await models.canned_responses(current.caller.workspace_id),
        variables=VARIABLES,
        section="canned",
    )


def flow_source(flow_id: UUID, definition: dict[str, Any]) -> str:
    """A published version as YAML to edit, with the flow's id first (publishing it makes the
    next version) and each block's keys in the order a person writes them (the database
    keeps no key order)."""
    document: dict[str, Any] = {"id": str(flow_id)}
    for key in ("name", "time_zone", "start", "on_error"):
        if key in definition:
            document[key] = definition[key]
    document.update({k: v for k, v in definition.items() if k not in document and k != "blocks"})
    document["blocks"] = [
        {
            **{k: block[k] for k in BLOCK_KEY_ORDER if k in block},
            **{k: v for k, v in block.items() if k not in BLOCK_KEY_ORDER},
        }
        for block in definition.get("blocks") or []
    ]
    return yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=100)


# The order a person writes a block in: what it is, what it says, where it goes.
BLOCK_KEY_ORDER = (
    "id",
    "type",
    "text",
    "variable",
    "buttons",
    "rows",
    "list_button",
    "pattern",
    "max_attempts",
    "retry_text",
    "rules",
    "group",
    "rotation",
    "member",
    "after",
    "next",
    "default",
    "fallback",
)


def _missing(request: Request, current: Visit, title: str, message: str) -> HTMLResponse:
    response = page(request, current, "message.html", title=title, message=message)
    response.status_code = 404
    return response


def _safe_next(target: str) -> str:
    """Only a path of this site (``/...``, not ``//host``): sign-in must not redirect away."""
    if target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/"


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (KeyError, ValueError):
        return ZoneInfo("UTC")


async def _form(request: Request) -> dict[str, str]:
    """A urlencoded form's fields (the sign-in and sign-out forms are the only ones)."""
    body = (await request.body())[:10_000]
    fields = parse_qs(body.decode("utf-8", errors="replace"), keep_blank_values=True)
    return {name: values[0] for name, values in fields.items()}
