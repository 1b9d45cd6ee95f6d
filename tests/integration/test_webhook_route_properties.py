"""The webhook route over any signed body (hypothesis), with the real broker behind it.

Whatever a sender signs, the gateway answers 200, 400 or 413, never 5xx; a delivery with
valid messages among broken items answers 200 and counts every valid one as accepted.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.settings import Settings
from tests.conftest import TEST_APP_SECRET
from tests.harness import gateway_client
from tests.webhook_strategies import MixedDelivery, json_values, mixed_deliveries
from tests.webhooks import signed_headers

pytestmark = pytest.mark.integration
T = TypeVar("T")
EXAMPLES = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


async def test_any_signed_body_answers_200_400_or_413(settings: Settings) -> None:
    async with gateway_client(settings) as client:
        loop = asyncio.get_running_loop()

        def run(coroutine: Coroutine[Any, Any, T]) -> T:
            return asyncio.run_coroutine_threadsafe(coroutine, loop).result(timeout=30)

        def post(body: bytes) -> httpx.Response:
            return run(
                client.post(
                    "/webhooks/whatsapp",
                    content=body,
                    headers=signed_headers(TEST_APP_SECRET, body),
                )
            )

        @EXAMPLES
        @given(
            body=json_values.map(orjson.dumps)
            | st.binary(max_size=300)
            | mixed_deliveries().map(lambda delivery: orjson.dumps(delivery.body))
        )
        def any_body(body: bytes) -> None:
            response = post(body)
            assert response.status_code in (200, 400, 413), (body, response.text)

        @EXAMPLES
        @given(delivery=mixed_deliveries())
        def valid_neighbours(delivery: MixedDelivery) -> None:
            response = post(orjson.dumps(delivery.body))
            assert response.status_code == 200, response.text
            answer = response.json()
            assert answer["accepted"] >= len(delivery.valid)
            assert answer["accepted"] + answer["rejected"] >= len(delivery.valid) + len(
                delivery.others
            )

        # Hypothesis runs synchronously: in a thread, while this loop serves the requests.
        await asyncio.to_thread(any_body)
        await asyncio.to_thread(valid_neighbours)


async def test_a_signature_that_is_not_ascii_is_refused_with_401(settings: Settings) -> None:
    """Issue 8, item 5: it answered 500 (with a traceback per request)."""
    async with gateway_client(settings) as client:
        body = b'{"object": "whatsapp_business_account", "entry": []}'
        for header in ("sha256=" + "é" * 64, "sha256=\u00ff\u00fe", "é"):
            response = await client.post(
                "/webhooks/whatsapp",
                content=body,
                headers={b"X-Hub-Signature-256": header.encode("latin-1")},
            )
            assert response.status_code == 401, response.text
        token = await client.get(
            "/webhooks/whatsapp",
            params={"hub.mode": "subscribe", "hub.verify_token": "ñandú", "hub.challenge": "1"},
        )
        assert token.status_code == 403
