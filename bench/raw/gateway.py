"""The raw webhook: check the signature, one record per message, 200 once Kafka acked all.

A bare ASGI app under uvicorn (as switchboard's gateway runs under uvicorn), with the
same producer settings as switchboard's: idempotent, ``acks=all``, no linger.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from typing import Any

import orjson
import uvicorn
from aiokafka import AIOKafkaProducer

from bench.raw.config import INBOUND, RawConfig

Scope = dict[str, Any]
Message = dict[str, Any]


class RawGateway:
    def __init__(self, config: RawConfig) -> None:
        self.config = config
        self.topic = config.topic(INBOUND)
        self.secret = config.secret.encode()
        self.producer: AIOKafkaProducer | None = None

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        if scope["method"] == "GET" and scope["path"] == "/healthz":
            await _answer(send, 200, b'{"status":"ok"}')
            return
        if scope["method"] != "POST" or scope["path"] != "/webhooks/whatsapp":
            await _answer(send, 404, b'{"detail":"not found"}')
            return
        body = await _body(receive)
        signature = dict(scope["headers"]).get(b"x-hub-signature-256", b"").decode()
        expected = "sha256=" + hmac.new(self.secret, body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, signature):
            await _answer(send, 401, b'{"detail":"bad signature"}')
            return
        try:
            records = _records(body)
        except (ValueError, KeyError, TypeError) as error:
            await _answer(send, 400, orjson.dumps({"detail": f"not a webhook: {error!r}"}))
            return
        assert self.producer is not None
        try:
            futures = [
                await self.producer.send(self.topic, value=value, key=key) for key, value in records
            ]
            await asyncio.wait_for(asyncio.gather(*futures), timeout=5)
        except Exception as error:
            await _answer(send, 503, orjson.dumps({"detail": repr(error)}))
            return
        await _answer(send, 200, b'{"status":"accepted"}')

    async def _lifespan(self, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.producer = AIOKafkaProducer(
                    bootstrap_servers=self.config.kafka,
                    acks="all",
                    enable_idempotence=True,
                    linger_ms=0,
                )
                await self.producer.start()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.producer is not None:
                    await self.producer.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return


def _records(body: bytes) -> list[tuple[bytes, bytes]]:
    """(key, value) per message: keyed by business number and contact, like switchboard."""
    document = orjson.loads(body)
    records: list[tuple[bytes, bytes]] = []
    for entry in document["entry"]:
        for change in entry["changes"]:
            value = change["value"]
            number = value["metadata"]["phone_number_id"]
            for message in value.get("messages", []):
                records.append(
                    (
                        f"{number}:{message['from']}".encode(),
                        orjson.dumps({"phone_number_id": number, "message": message}),
                    )
                )
    return records


async def _body(receive: Any) -> bytes:
    chunks: list[bytes] = []
    while True:
        message: Message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


async def _answer(send: Any, status: int, body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": body})


def main(config: RawConfig) -> None:
    uvicorn.Server(
        uvicorn.Config(
            RawGateway(config),
            host="127.0.0.1",
            port=config.port,
            log_config=None,
            access_log=False,
            lifespan="on",
        )
    ).run()
