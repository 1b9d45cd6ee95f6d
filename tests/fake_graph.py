"""A fake WhatsApp Cloud API: a real HTTP server on a local port that plays Meta's Graph API.

The dispatcher talks to it over TCP exactly as it would to graph.facebook.com (no patched
client): ``POST /{version}/{phone_number_id}/messages`` with a bearer token. It records
every request *as it arrives*, before answering, so a request whose answer never reached
the dispatcher (a kill, a timeout) is still counted: that is what Meta would have seen.

Answers are scripted per recipient (``to``), in order, then ``default``: 200 with a fresh
wamid, 429, 5xx, 400 with Meta's error object, any of them after a delay.

It runs uvicorn in a background thread with its own event loop, so it serves the tests'
in-process apps and the e2e tests' child processes alike.
"""

from __future__ import annotations

import asyncio
import itertools
import socket
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

VERSION = "v21.0"


@dataclass(frozen=True)
class Reply:
    """One scripted answer. ``body=None`` on a 200 means Meta's success body, fresh wamid."""

    status: int = 200
    body: dict[str, Any] | None = None
    delay: float = 0.0

    @classmethod
    def ok(cls, *, delay: float = 0.0) -> Reply:
        return cls(200, None, delay)

    @classmethod
    def throttled(cls) -> Reply:
        return cls(429, meta_error(130429, "Rate limit hit", "Cloud API message throughput"))

    @classmethod
    def server_error(cls, status: int = 500) -> Reply:
        return cls(status, meta_error(131000, "Something went wrong", "Unknown error"))

    @classmethod
    def bad_request(cls, code: int = 131030, message: str = "Recipient not allowed") -> Reply:
        return cls(400, meta_error(code, message, "Recipient phone number not in allowed list"))


def meta_error(code: int, message: str, details: str) -> dict[str, Any]:
    """Meta's error object, as the Cloud API answers it."""
    return {
        "error": {
            "message": f"(#{code}) {message}",
            "type": "OAuthException",
            "code": code,
            "error_data": {"messaging_product": "whatsapp", "details": details},
            "fbtrace_id": "AbCdEfGhIjK",
        }
    }


@dataclass(frozen=True)
class Received:
    """One request as the fake API saw it, with what it answered (or was about to)."""

    path: str
    phone_number_id: str
    authorization: str | None
    body: dict[str, Any]
    status: int
    wamid: str | None
    at: float

    @property
    def to(self) -> str:
        """The customer: a phone number (``to``) or a business-scoped user id (``recipient``)."""
        return str(self.body.get("to") or self.body.get("recipient"))

    @property
    def text(self) -> str | None:
        """The text body, or the interactive message's body text."""
        for container in (self.body.get("text"), self.body.get("interactive", {}).get("body")):
            if isinstance(container, dict):
                value = container.get("body", container.get("text"))
                if isinstance(value, str):
                    return value
        return None


@dataclass
class FakeGraphApi:
    """Start with ``with FakeGraphApi() as graph:``; point the dispatcher at ``base_url``."""

    default: Reply = field(default_factory=Reply.ok)
    version: str = VERSION
    _scripts: dict[str, deque[Reply]] = field(default_factory=lambda: defaultdict(deque))
    _received: list[Received] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _wamids: itertools.count[int] = field(default_factory=itertools.count)
    _server: uvicorn.Server | None = None
    _thread: threading.Thread | None = None
    _port: int = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._port}/{self.version}"

    def script(self, to: str, *replies: Reply) -> None:
        """Answer the next requests to ``to`` with ``replies``, in order."""
        with self._lock:
            self._scripts[to].extend(replies)

    @property
    def received(self) -> list[Received]:
        with self._lock:
            return list(self._received)

    def received_to(self, to: str) -> list[Received]:
        return [request for request in self.received if request.to == to]

    async def _messages(self, request: Request) -> Response:
        raw = await request.body()
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            body = {"unparseable": raw.decode("utf-8", "replace")}
        to = str(body.get("to") or body.get("recipient")) if isinstance(body, dict) else ""
        with self._lock:
            script = self._scripts.get(to)
            reply = script.popleft() if script else self.default
            wamid = (
                f"wamid.fake.{next(self._wamids)}"
                if reply.status == 200 and reply.body is None
                else None
            )
            self._received.append(
                Received(
                    path=request.url.path,
                    phone_number_id=request.path_params["phone_number_id"],
                    authorization=request.headers.get("authorization"),
                    body=body if isinstance(body, dict) else {"body": body},
                    status=reply.status,
                    wamid=wamid,
                    at=time.monotonic(),
                )
            )
        if reply.delay:
            await asyncio.sleep(reply.delay)
        answer = reply.body
        if answer is None:
            answer = {
                "messaging_product": "whatsapp",
                "contacts": [{"input": to, "wa_id": to}],
                "messages": [{"id": wamid}],
            }
        return Response(orjson.dumps(answer), reply.status, media_type="application/json")

    def start(self) -> None:
        app = Starlette(
            routes=[
                Route(
                    f"/{self.version}/{{phone_number_id}}/messages",
                    self._messages,
                    methods=["POST"],
                )
            ]
        )
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self._port = sock.getsockname()[1]
        config = uvicorn.Config(
            app,
            log_config=None,
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=1,
        )
        server = uvicorn.Server(config)
        self._server = server
        self._thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name="fake-graph-api", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the fake Graph API did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=10)

    def __enter__(self) -> FakeGraphApi:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
