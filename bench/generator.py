"""The open-loop load generator: signed webhooks at their intended times, in processes of
their own (so stamping arrivals or sampling processes never delays a send).

Each sender process opens its HTTP connections first (Meta keeps connections to a webhook
open too), says it is ready, receives the common start time ``t0`` and fires item ``i`` at
``t0 + offset_i`` whether or not earlier requests were answered. Times are
``time.monotonic()``, which on Linux is one clock for every process of the machine, so the
arrival stamps taken by another process compare directly.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path

import aiohttp
import orjson

from bench.schedule import Item, due, split
from bench.webhooks import SignedBody

# A request that has no answer by then is a failure (status 0), not a hang.
REQUEST_TIMEOUT_SECONDS = 30.0
KEEPALIVE_SECONDS = 3.0


@dataclass(frozen=True)
class Sent:
    """What happened to one item: when it was meant to go, when it went, the answer."""

    intended: float
    started: float | None
    finished: float | None
    status: int  # 0: transport error or time-out; -1: never sent (its predecessor failed)
    error: str | None = None  # the transport error's kind, for a status 0


@dataclass(frozen=True)
class SenderPlan:
    url: str
    items: list[Item]  # local indices: ``after`` and ``body`` point into this plan
    bodies: list[SignedBody]
    connections: int
    out: Path


def plans(
    url: str,
    items: Sequence[Item],
    bodies: Sequence[SignedBody],
    *,
    senders: int,
    connections: int,
    out_dir: Path,
) -> tuple[list[SenderPlan], list[list[int]]]:
    """One plan per sender and, per sender, the global index of each of its items."""
    shares = split(items, senders)
    result: list[SenderPlan] = []
    for number, share in enumerate(shares):
        local = {global_index: n for n, global_index in enumerate(share)}
        own_items = [
            Item(
                offset=items[g].offset,
                body=n,
                after=local[items[g].after] if items[g].after is not None else None,  # type: ignore[index]
                measured=items[g].measured,
            )
            for n, g in enumerate(share)
        ]
        result.append(
            SenderPlan(
                url=url,
                items=own_items,
                bodies=[bodies[items[g].body] for g in share],
                connections=max(connections // senders, 1),
                out=out_dir / f"sender-{number}.json",
            )
        )
    return result, shares


def send(
    url: str,
    items: Sequence[Item],
    bodies: Sequence[SignedBody],
    *,
    senders: int,
    connections: int,
    out_dir: Path,
) -> list[Sent]:
    """Run the schedule from ``senders`` processes; one :class:`Sent` per item, in order.

    Blocking (call it from a thread): it returns when every request was answered, failed
    or timed out.
    """
    context = multiprocessing.get_context("spawn")
    sender_plans, shares = plans(
        url, items, bodies, senders=senders, connections=connections, out_dir=out_dir
    )
    pipes: list[Connection] = []
    children = []
    for plan in sender_plans:
        ours, theirs = context.Pipe()
        child = context.Process(target=run_sender, args=(plan, theirs), name="bench-sender")
        child.start()
        pipes.append(ours)
        children.append(child)
    try:
        for pipe in pipes:
            if not pipe.poll(60):
                raise RuntimeError("a sender did not get ready within 60 s")
            message = pipe.recv()
            if message != "ready":
                raise RuntimeError(f"a sender could not start: {message}")
        t0 = time.monotonic() + 0.2
        for pipe in pipes:
            pipe.send(t0)
        for child in children:
            child.join()
        results: list[Sent | None] = [None] * len(items)
        for plan, share in zip(sender_plans, shares, strict=True):
            if not plan.out.exists():
                raise RuntimeError(f"a sender died without its results ({plan.out})")
            rows = orjson.loads(plan.out.read_bytes())
            for global_index, row in zip(share, rows, strict=True):
                results[global_index] = Sent(*row)
        return [sent for sent in results if sent is not None]
    finally:
        for child in children:
            if child.is_alive():
                child.kill()
                child.join()


def run_sender(plan: SenderPlan, pipe: Connection) -> None:
    """A sender process's entry point."""
    try:
        asyncio.run(_run(plan, pipe))
    except BaseException as error:
        pipe.send(f"{type(error).__name__}: {error}")
        raise


async def _run(plan: SenderPlan, pipe: Connection) -> None:
    # uvicorn closes a connection idle for 5 s; reusing one it is closing at that moment
    # fails the request (ServerDisconnectedError), a client artefact: let idle ones go first.
    connector = aiohttp.TCPConnector(
        limit=plan.connections, force_close=False, keepalive_timeout=KEEPALIVE_SECONDS
    )
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_SECONDS)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        # Open the connections before the clock starts.
        health = plan.url.split("/webhooks/")[0] + "/healthz"

        async def touch() -> None:
            async with session.get(health) as response:
                await response.read()

        await asyncio.gather(*(touch() for _ in range(plan.connections)))
        pipe.send("ready")
        t0: float = await asyncio.get_running_loop().run_in_executor(None, pipe.recv)
        results = await _fire(session, plan, t0)
    plan.out.write_bytes(orjson.dumps(results))


async def _fire(
    session: aiohttp.ClientSession, plan: SenderPlan, t0: float
) -> list[tuple[float, float | None, float | None, int, str | None]]:
    items = plan.items
    offsets = [item.offset for item in items]
    results: list[tuple[float, float | None, float | None, int, str | None]] = [
        (t0 + item.offset, None, None, -1, None) for item in items
    ]
    waited_on = {item.after for item in items if item.after is not None}
    accepted: dict[int, asyncio.Future[bool]] = {
        n: asyncio.get_running_loop().create_future() for n in waited_on
    }

    async def post(n: int) -> None:
        item = items[n]
        ok = False
        try:
            if item.after is not None and not await accepted[item.after]:
                return  # its predecessor was refused: sending it would break the order
            body = plan.bodies[item.body]
            started = time.monotonic()
            status, error = 0, None
            try:
                async with session.post(
                    plan.url,
                    data=body.body,
                    headers={
                        "Content-Type": "application/json",
                        "X-Hub-Signature-256": body.signature,
                    },
                ) as response:
                    await response.read()
                    status = response.status
            except (aiohttp.ClientError, TimeoutError) as problem:
                status, error = 0, type(problem).__name__
            results[n] = (t0 + item.offset, started, time.monotonic(), status, error)
            ok = 200 <= status < 300
        finally:
            if n in accepted:
                accepted[n].set_result(ok)

    tasks: list[asyncio.Task[None]] = []
    start = 0
    while start < len(items):
        end = due(offsets, time.monotonic() - t0, start)
        tasks.extend(asyncio.create_task(post(n)) for n in range(start, end))
        start = end
        if start < len(items):
            await asyncio.sleep(max(t0 + offsets[start] - time.monotonic(), 0.0))
    await asyncio.gather(*tasks)
    return results
