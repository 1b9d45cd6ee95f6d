"""The webhook's transport edge, against a real HTTP server and the real broker.

A body over the size bound is refused with 413 before it is read (a declared length, or a
chunked body read only up to the bound); a record Kafka will never take is refused for good
(413 too large), not with a 503 that Meta would retry for days. (A record that cannot be encoded
answers 400: ``tests/unit/test_publisher.py``; the webhook's parser refuses a body nested deep
enough for that before it gets there.)
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import AsyncIterator

import httpx
import pytest
import uvicorn
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from events.catalogue import WHATSAPP_INBOUND
from services.gateway.app import create_app
from services.settings import Settings
from tests.conftest import TEST_APP_SECRET
from tests.harness import eventually, free_port
from tests.webhooks import Text, messages_webhook, signed_headers

pytestmark = pytest.mark.integration
NUMBER = "480112093385611"
LIMIT = 64 * 1024


@contextlib.asynccontextmanager
async def served(settings: Settings) -> AsyncIterator[int]:
    """The gateway behind uvicorn on a free port (what ``switchboard run gateway`` serves)."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings), host="127.0.0.1", port=port, log_config=None, access_log=False
        )
    )
    task = asyncio.create_task(server.serve())
    deadline = time.monotonic() + 30
    while not server.started:
        assert not task.done(), "the gateway did not start"
        assert time.monotonic() < deadline, "the gateway did not start within 30s"
        await asyncio.sleep(0.05)
    try:
        yield port
    finally:
        server.should_exit = True
        await task


@pytest.fixture
async def gateway(settings: Settings) -> AsyncIterator[int]:
    async with served(dataclasses.replace(settings, webhook_max_body_bytes=LIMIT)) as port:
        yield port


async def status_of(reader: asyncio.StreamReader) -> bytes:
    return (await asyncio.wait_for(reader.readline(), timeout=10)).strip()


async def test_a_body_declared_larger_than_the_bound_is_refused_before_it_is_sent(
    gateway: int,
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", gateway)
    try:
        # 50 MB announced, one byte sent: answering at all proves nothing more was awaited.
        writer.write(
            b"POST /webhooks/whatsapp HTTP/1.1\r\nHost: gateway\r\n"
            b"Content-Type: application/json\r\nContent-Length: 52428800\r\n\r\n{"
        )
        await writer.drain()
        assert await status_of(reader) == b"HTTP/1.1 413 Request Entity Too Large"
    finally:
        writer.close()


async def test_a_chunked_body_is_read_only_up_to_the_bound(gateway: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", gateway)
    chunk = b"x" * 65536
    sent = 0
    answer = asyncio.create_task(status_of(reader))
    try:
        writer.write(
            b"POST /webhooks/whatsapp HTTP/1.1\r\nHost: gateway\r\n"
            b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        while not answer.done() and sent < 50 * 1024 * 1024:
            writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            with contextlib.suppress(ConnectionError):
                await writer.drain()
            sent += len(chunk)
        assert await answer == b"HTTP/1.1 413 Request Entity Too Large"
        # The server answered long before the 50 MB a full read would have taken (what was
        # sent meanwhile sits in the sockets' buffers, not in the gateway).
        assert sent < 16 * 1024 * 1024
    finally:
        answer.cancel()
        writer.close()


async def test_a_signed_body_over_the_bound_is_413_and_one_within_it_is_accepted(
    gateway: int, settings: Settings
) -> None:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{gateway}") as http:
        padding = LIMIT - len(messages_webhook(NUMBER, [Text("5731", "w.fits", "")]))
        fits = messages_webhook(NUMBER, [Text("5731", "w.fits", "a" * padding)])
        over = messages_webhook(NUMBER, [Text("5731", "w.over", "a" * (padding + 1))])
        assert len(fits) == LIMIT
        accepted = await delivered(http, fits)
        assert accepted.status_code == 200, accepted.text
        refused = await http.post(
            "/webhooks/whatsapp", content=over, headers=signed_headers(TEST_APP_SECRET, over)
        )
        assert refused.status_code == 413
        assert "SWITCHBOARD_WEBHOOK_MAX_BODY_BYTES" in refused.json()["detail"]


async def test_records_kafka_will_never_take_are_refused_for_good_and_the_next_one_passes(
    settings: Settings,
) -> None:
    # A body bound above the producer's request limit (1 MiB), to reach that limit too.
    roomy = dataclasses.replace(settings, webhook_max_body_bytes=2 * 1024 * 1024)
    async with (
        served(roomy) as port,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=20) as http,
    ):

        async def post(body: bytes) -> httpx.Response:
            return await delivered(http, body)

        # Over the producer's own request limit (1 MiB), within the body bound.
        big = messages_webhook(NUMBER, [Text("5731", "w.big", "\u00e9" * 600_000)])
        assert 1024 * 1024 < len(big) < roomy.webhook_max_body_bytes
        too_large = await post(big)
        assert too_large.status_code == 413, too_large.text
        assert "MessageSizeTooLargeError" in too_large.json()["detail"]

        # Over the broker's limit for the topic: the broker refuses the batch itself, which
        # also breaks the idempotent producer's sequence for that partition.
        await limit_topic(settings, max_message_bytes=20_000)
        refused = await post(messages_webhook(NUMBER, [Text("5731", "w.mid", "m" * 40_000)]))
        assert refused.status_code == 413, refused.text
        after = await post(messages_webhook(NUMBER, [Text("5731", "w.next", "next")]))
        assert after.status_code == 200, after.text


async def delivered(http: httpx.AsyncClient, body: bytes) -> httpx.Response:
    """Post a signed body as Meta does: again while it answers 503 (a broker that has just
    created the test's topics may not serve them for a moment)."""

    async def post() -> httpx.Response:
        return await http.post(
            "/webhooks/whatsapp", content=body, headers=signed_headers(TEST_APP_SECRET, body)
        )

    return await eventually(post, lambda answer: answer.status_code != 503, within=30, interval=1)


async def limit_topic(settings: Settings, *, max_message_bytes: int) -> None:
    """Lower the topic's ``max.message.bytes`` and wait until the broker applies it (it does
    so a moment after acknowledging the change)."""
    topic = ConfigResource(
        ConfigResourceType.TOPIC,
        WHATSAPP_INBOUND.qualified(settings.topic_prefix),
        configs={"max.message.bytes": str(max_message_bytes)},
    )
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        await admin.alter_configs([topic])

        async def applied() -> str:
            [described] = await admin.describe_configs([topic])
            _code, _message, _type, _name, entries = described.resources[0]
            return str(next(value for name, value, *_ in entries if name == "max.message.bytes"))

        await eventually(applied, lambda value: value == str(max_message_bytes), within=10)
    finally:
        await admin.close()
