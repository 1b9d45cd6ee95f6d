"""Running the operator's commands as a user does, and the whole system beside them."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import httpx

from services.dispatcher.app import create_app as create_dispatcher
from services.expiry.app import create_app as create_expiry
from services.settings import Settings
from tests.harness import ROOT, consumers, gateway_client


async def switchboard(settings: Settings, *args: str) -> tuple[int, str, str]:
    """``python -m services.cli ARGS`` in a process of its own: exit status, stdout, stderr."""
    env = {
        "SWITCHBOARD_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "SWITCHBOARD_DATABASE_URL": settings.database_url,
        "SWITCHBOARD_TOPIC_PREFIX": settings.topic_prefix,
        "SWITCHBOARD_SCHEMA_PREFIX": settings.schema_prefix,
        "SWITCHBOARD_LOG_FORMAT": "json",
        "PATH": "/usr/bin:/bin",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "services.cli",
        *args,
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


@asynccontextmanager
async def whole_system(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """Every consumer (the dispatcher and expiry included), the relay and the gateway."""
    async with AsyncExitStack() as stack:
        for create in (create_dispatcher, create_expiry):
            app = create(settings)
            await stack.enter_async_context(app.lifespan_context())
            await app.start()
            stack.push_async_callback(app.stop)
        await stack.enter_async_context(consumers(settings))
        yield await stack.enter_async_context(gateway_client(settings))
