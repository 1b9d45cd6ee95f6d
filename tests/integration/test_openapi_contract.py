"""The OpenAPI document is the contract: schemathesis drives every documented route of the
running gateway (a real HTTP server, the real consumers, broker and database) with generated
requests, valid and invalid, as an admin and as an agent.

Checks: no 5xx; every status code, content type, header and body as documented; invalid
input refused with a 4xx; a route that needs a token refuses a request without one.
Not checked: ``positive_data_acceptance`` (schema-valid requests the domain refuses, such as
a group name already taken, answer 409/422 by design) and the stateful checks
(``use_after_free``...: a deactivated member stays readable, by design). ``/api/stream`` is
left out of the generated run (an endless response); ``test_the_stream_is_as_documented``
reads its first event instead.

Examples per route are bounded (``EXAMPLES``) so the run takes a minute or two.
"""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Iterator, Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, Phase, assume, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from services.gateway.app import create_app
from services.settings import Settings
from services.workspaces import create_workspace
from tests.conftest import TEST_APP_SECRET, new_isolated_env
from tests.harness import consumers, free_port
from tests.webhooks import Text, messages_webhook, signed_headers

pytestmark = [
    pytest.mark.integration,
    # Raised from inside schemathesis's own strategies, not from this test.
    pytest.mark.filterwarnings("ignore:Do not use the `random` module:FutureWarning"),
]
EXAMPLES = 25
NUMBER = "480155550001"
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
    ignored_auth,
]


@dataclass(frozen=True)
class Seeded:
    """What exists in the workspace, so generated requests can hit real ids."""

    url: str
    admin_token: str
    agent_token: str
    admin_id: str
    agent_id: str
    victim_member_id: str  # the one PATCH, DELETE and token rotation may aim at
    group_id: str
    victim_group_id: str
    flow_id: str
    conversation_id: str  # queued in the group: claims, transfers, replies
    victim_conversation_id: str  # the one a close may aim at


class RunningSystem:
    """The consumers and a uvicorn-served gateway on a loop of their own (a thread), so
    schemathesis's synchronous calls reach a real server."""

    def __init__(self, settings_: Settings) -> None:
        self.settings = settings_
        self.port = free_port()
        self.loop = asyncio.new_event_loop()
        self.ready: Future[None] = Future()
        self.stopping: asyncio.Event | None = None
        self.thread = threading.Thread(target=self._run, name="contract-system", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.thread.start()
        self.ready.result(timeout=120)

    def stop(self) -> None:
        if self.stopping is not None:
            self.loop.call_soon_threadsafe(self.stopping.set)
        self.thread.join(timeout=60)

    def call(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=120)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._main())

    async def _main(self) -> None:
        self.stopping = asyncio.Event()
        try:
            async with consumers(self.settings, metrics=True):
                config = uvicorn.Config(
                    create_app(self.settings), host="127.0.0.1", port=self.port, log_level="warning"
                )
                server = uvicorn.Server(config)
                serving = asyncio.create_task(server.serve())
                while not server.started:
                    if serving.done():
                        serving.result()
                    await asyncio.sleep(0.05)
                self.ready.set_result(None)
                await self.stopping.wait()
                server.should_exit = True
                await serving
        except BaseException as error:
            if not self.ready.done():
                self.ready.set_exception(error)
            raise


@pytest.fixture(scope="module")
def seeded(infrastructure: dict[str, str], used_topic_prefixes: list[str]) -> Iterator[Seeded]:
    system = RunningSystem(Settings.from_env(new_isolated_env(infrastructure, used_topic_prefixes)))
    system.start()
    try:
        yield _seed(system)
    finally:
        system.stop()


def _seed(system: RunningSystem) -> Seeded:
    workspace = system.call(
        create_workspace(
            system.settings, name="Contract", phone_number_id=NUMBER, agent_conversations=True
        )
    )
    admin = {"Authorization": f"Bearer {workspace['admin_token']}"}
    with httpx.Client(base_url=system.url, timeout=30) as client:

        def ok(response: httpx.Response) -> dict[str, Any]:
            assert response.status_code in (200, 201), response.text
            found: dict[str, Any] = response.json()
            return found

        admin_id = ok(client.get("/api/me", headers=admin))["member_id"]
        agent = ok(client.post("/api/members", json={"name": "Ana"}, headers=admin))
        victim = ok(client.post("/api/members", json={"name": "Victim"}, headers=admin))
        group = ok(client.post("/api/groups", json={"name": "Ventas"}, headers=admin))
        victim_group = ok(client.post("/api/groups", json={"name": "Victims"}, headers=admin))
        for member in (agent["member_id"], victim["member_id"]):
            ok(client.put(f"/api/groups/{group['group_id']}/members/{member}", headers=admin))
        flow = ok(
            client.post(
                "/api/flows",
                json={
                    "name": "Queue",
                    "start": "hi",
                    "blocks": [
                        {"id": "hi", "type": "message", "text": "Hola", "next": "queue"},
                        {
                            "id": "queue",
                            "type": "connect_to_agent",
                            "group": group["group_id"],
                            "rotation": "no_owner",
                        },
                    ],
                },
                headers=admin,
            )
        )
        ok(
            client.put(
                f"/api/numbers/{NUMBER}/flow", json={"flow_id": flow["flow_id"]}, headers=admin
            )
        )
        conversations = []
        for index, contact in enumerate(("573001110001", "573001110002")):
            body = messages_webhook(NUMBER, [Text(contact, f"wamid.contract.{index}", "hola")])
            posted = client.post(
                "/webhooks/whatsapp", content=body, headers=signed_headers(TEST_APP_SECRET, body)
            )
            assert posted.status_code == 200, posted.text
            conversations.append(_queued(client, admin, contact))
    return Seeded(
        url=system.url,
        admin_token=workspace["admin_token"],
        agent_token=agent["token"],
        admin_id=admin_id,
        agent_id=agent["member_id"],
        victim_member_id=victim["member_id"],
        group_id=group["group_id"],
        victim_group_id=victim_group["group_id"],
        flow_id=flow["flow_id"],
        conversation_id=conversations[0],
        victim_conversation_id=conversations[1],
    )


def _queued(client: httpx.Client, admin: dict[str, str], contact: str) -> str:
    for _ in range(400):
        rows = client.get("/api/conversations", params={"contact": contact}, headers=admin).json()
        queued = [r for r in rows["conversations"] if r.get("assignment_state") == "queued"]
        if queued:
            return str(queued[0]["conversation_id"])
        threading.Event().wait(0.05)
    raise AssertionError(f"no queued conversation for {contact}")


def _known_ids(seeded: Seeded, method: str, path: str) -> dict[str, str]:
    """Real ids for a route's path parameters; destructive routes get the victims."""
    destructive = method in ("PATCH", "DELETE") or path.endswith(("/token", "/close"))
    return {
        "member_id": seeded.victim_member_id if destructive else seeded.agent_id,
        "group_id": seeded.victim_group_id
        if destructive and "/members/" not in path
        else seeded.group_id,
        "conversation_id": seeded.victim_conversation_id
        if path.endswith("/close")
        else seeded.conversation_id,
        "flow_id": seeded.flow_id,
        "phone_number_id": NUMBER,
    }


# Headers that frame the HTTP message itself, and the characters a header name may hold
# (RFC 9110 token): a request breaking these is refused by the HTTP server (uvicorn answers
# 400 "Invalid HTTP request received") before any route sees it; that is not the API's
# contract, so such generated cases are left out.
FRAMING = frozenset({"content-length", "transfer-encoding", "host", "connection", "expect", "te"})
TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")


def http_valid_headers(headers: Mapping[str, Any]) -> bool:
    return all(TOKEN.match(name) is not None and name.lower() not in FRAMING for name in headers)


def _documented_operations() -> list[tuple[str, str]]:
    """Every (method, path) of the OpenAPI document, read without a server (the app is only
    built, not started); the stream is left out (an endless response)."""
    document = create_app(Settings(whatsapp_app_secret="contract")).openapi()
    return [
        (method.upper(), path)
        for path, operations in document["paths"].items()
        if path != "/api/stream"
        for method in operations
    ]


@pytest.fixture(scope="module")
def contract(seeded: Seeded) -> Any:
    """The document as the running gateway serves it."""
    config = schemathesis.Config.from_dict({"request-timeout": 30})
    return schemathesis.openapi.from_url(f"{seeded.url}/openapi.json", config=config)


@pytest.mark.parametrize(("method", "path"), _documented_operations())
def test_the_api_keeps_its_contract(contract: Any, seeded: Seeded, method: str, path: str) -> None:
    operation = contract[path][method]
    names = {parameter.name for parameter in operation.path_parameters}
    known = {k: v for k, v in _known_ids(seeded, method, path).items() if k in names}
    # Generated ids (mostly 404s) and the workspace's own (the routes' real work), each with
    # valid and with invalid input.
    strategies = [
        operation.as_strategy(mode, path_parameters=ids)
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
        for ids in ([None, known] if known else [None])
    ]
    tokens = {"admin": seeded.admin_token, "agent": seeded.agent_token}

    @given(case=st.one_of(strategies), who=st.sampled_from(sorted(tokens)))
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        phases=[Phase.explicit, Phase.generate],
        derandomize=True,
        database=None,
    )
    def call(case: schemathesis.Case[Any], who: str) -> None:
        assume(http_valid_headers(case.headers or {}))
        case.call_and_validate(headers={"Authorization": f"Bearer {tokens[who]}"}, checks=CHECKS)

    call()


def test_the_stream_is_as_documented(seeded: Seeded) -> None:
    headers = {"Authorization": f"Bearer {seeded.agent_token}"}
    with (
        httpx.Client(base_url=seeded.url, timeout=10) as client,
        client.stream("GET", "/api/stream", headers=headers) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = iter(response.iter_lines())
        first = [next(lines), next(lines), next(lines)]
    assert first[0].startswith("id: ")
    assert first[1] == "event: ready"
    assert first[2].startswith('data: {"member_id": "') or first[2].startswith(
        'data: {"member_id":'
    )
    # A Last-Event-ID that is not an ASCII number is ignored ("²" passed str.isdigit and
    # crashed int(): a 500).
    odd = [(k.encode(), v.encode()) for k, v in headers.items()]
    odd.append((b"Last-Event-ID", "²".encode("latin-1")))
    with (
        httpx.Client(base_url=seeded.url, timeout=10) as client,
        client.stream("GET", "/api/stream", headers=odd) as response,
    ):
        assert response.status_code == 200
        assert next(response.iter_lines()).startswith("id: ")
    with httpx.Client(base_url=seeded.url, timeout=10) as client:
        refused = client.get("/api/stream")
        assert refused.status_code == 401
        assert isinstance(refused.json()["detail"], str)
        bad = client.get("/api/stream", params={"after": "-1"}, headers=headers)
        assert bad.status_code == 422
        assert bad.json()["errors"][0]["field"] == "query.after"
