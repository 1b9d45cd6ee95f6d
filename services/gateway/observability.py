"""The gateway's requests, observed: a metric and a log line per request, and its request id.

:class:`RequestObserver` is plain ASGI middleware (no ``BaseHTTPMiddleware``: that would
buffer the live stream's answer and run endpoints in another task). For every HTTP request it

* takes the caller's ``X-Request-ID`` when it is a sane token, else makes one, binds it to
  every log line written while the request is handled (structlog's context variables) and
  returns it in the answer's ``X-Request-ID``;
* counts the request by method, **route template** (``/api/conversations/{conversation_id}``,
  never the path itself, which would make a time series per conversation) and status, and
  observes its duration (``runtime.metrics``);
* writes one log line: method, route, path, status, duration, request id.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import structlog
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from runtime import metrics

log = structlog.get_logger("switchboard.requests")

REQUEST_ID_HEADER = b"x-request-id"
# Letters, digits and a few separators, as proxies and tracing systems send them.
SANE_REQUEST_ID = re.compile(rb"[A-Za-z0-9._:\-]{1,128}")
# Any other method (a scanner's) is counted under one label, not one series each.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED = "unmatched"


def request_id_of(headers: list[tuple[bytes, bytes]]) -> str:
    """The caller's request id when it is a sane token, else a new one."""
    for name, value in headers:
        if name.lower() == REQUEST_ID_HEADER and SANE_REQUEST_ID.fullmatch(value):
            return value.decode("ascii")
    return uuid.uuid4().hex


def route_of(scope: Scope, routes: Sequence[BaseRoute] = (), arrived: Scope | None = None) -> str:
    """The template of the route that answered, or ``unmatched``.

    FastAPI records its own routes in the scope; the others (the OpenAPI document, mounted
    static files) are found by matching ``routes`` against the scope as it ``arrived`` (a
    mount rewrites the path it hands on), as the router did.
    """
    route: Any = scope.get("route")
    if route is None:
        asked = arrived if arrived is not None else scope
        route = next((r for r in routes if r.matches(asked)[0] == Match.FULL), None)
    path = getattr(route, "path", None)
    return path if isinstance(path, str) and path else UNMATCHED


class RequestObserver:
    def __init__(
        self, app: ASGIApp, routes: Callable[[], Sequence[BaseRoute]] = lambda: ()
    ) -> None:
        self.app = app
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        arrived = dict(scope)
        request_id = request_id_of(scope.get("headers", []))
        method = scope["method"] if scope["method"] in METHODS else "other"
        started = time.perf_counter()
        # An exception that escapes reaches Starlette's error middleware, which answers 500.
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [
                    *(
                        (name, value)
                        for name, value in message.get("headers", [])
                        if name.lower() != REQUEST_ID_HEADER
                    ),
                    (REQUEST_ID_HEADER, request_id.encode("ascii")),
                ]
                message = {**message, "headers": headers}
            await send(message)

        with structlog.contextvars.bound_contextvars(request_id=request_id):
            try:
                await self.app(scope, receive, sending)
            finally:
                took = time.perf_counter() - started
                route = route_of(scope, self.routes(), arrived)
                metrics.HTTP_REQUESTS.labels(method, route, str(status)).inc()
                metrics.HTTP_SECONDS.labels(method, route).observe(took)
                log.info(
                    "request",
                    method=scope["method"],
                    route=route,
                    path=scope["path"],
                    status=status,
                    duration_ms=round(took * 1000, 2),
                )
