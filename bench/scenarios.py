"""The end-to-end scenarios: one measured run, and sweeps of runs over target rates.

* ongoing conversations: text messages for conversations opened beforehand, timed until
  each message's line is in the conversation history (switchboard and the raw pipeline);
* new conversations: a first message, then a button tap answering the bot's question,
  timed from the tap's intended time until the hand-off shows as assigned in an agent's
  inbox (switchboard only: the raw pipeline has no flow to run).

A run that leaves messages in flight (not drained within ``--drain``) leaves the system
dirty: the next run gets a fresh system, so no run inherits another's backlog.
"""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from bench import arrivals, generator
from bench.lags import Backlog, consumer_backlogs, relay_backlogs
from bench.options import Options
from bench.sampling import Sampler
from bench.schedule import Item, conversations, steady
from bench.stats import (
    Outcome,
    RunFigures,
    Spread,
    Verdict,
    fmt_seconds,
    percentile,
    run_figures,
    run_verdict,
    saturated,
)
from bench.systems import RawPipeline, Switchboard, dead_processes
from bench.webhooks import SignedBody, button_reply, sign, text_message

System = Switchboard | RawPipeline
SETUP_TIMEOUT_SECONDS = 120.0
WARM_UP_DRAIN_SECONDS = 180.0
AGENT_CAPACITY = 100  # the most a member may take (the directory's limit)


@dataclass
class RunResult:
    system: str
    scenario: str
    rate: float
    index: int
    figures: RunFigures
    verdict: Verdict
    http_p99: float  # how long the webhook took to answer (accepted requests)
    statuses: dict[str, int]
    peak_rss_mb: dict[str, float]
    cpu_cores: dict[str, float]  # share of a core each process used during the run
    backlogs: list[Backlog]  # at the end of the send phase
    rss_series: dict[str, list[tuple[float, float]]]  # (seconds into the run, MB)
    fresh_system: bool = False  # this run started a new system (the last one was dirty)


@dataclass
class Sweep:
    system: str
    scenario: str
    p99_limit: float
    runs: dict[float, list[RunResult]] = field(default_factory=dict)
    skipped: dict[float, str] = field(default_factory=dict)


Hook = Callable[[System], Coroutine[Any, Any, None]]


async def measure(
    system: System,
    *,
    scenario: str,
    rate: float,
    duration: float,
    index: int,
    items: Sequence[Item],
    bodies: Sequence[SignedBody],
    keys: Sequence[str | None],
    channel: str,
    opts: Options,
    work_dir: Path,
    p99_limit: float,
    drain: float | None = None,
    while_sending: Hook | None = None,
) -> RunResult:
    """Send ``items`` open-loop; stamp when each measured key shows up on ``channel``."""
    await asyncio.to_thread(work_dir.mkdir, parents=True, exist_ok=True)
    wanted = [key for key in keys if key is not None]
    listener = arrivals.Listener(system.conninfo, channel, wanted, work_dir / "arrivals.json")
    await asyncio.to_thread(listener.start)
    backlogs: list[Backlog] = []
    try:
        with Sampler(system.processes) as sampler:
            side_task = (
                asyncio.create_task(while_sending(system)) if while_sending is not None else None
            )
            sent = await asyncio.to_thread(
                generator.send,
                system.url + "/webhooks/whatsapp",
                items,
                bodies,
                senders=opts.senders,
                connections=opts.connections,
                out_dir=work_dir,
            )
            backlogs = await backlogs_of(system)
            accepted = sum(
                1
                for s, k in zip(sent, keys, strict=True)
                if k is not None and 200 <= s.status < 300
            )
            last_intended = max(s.intended for s in sent)
            deadline = last_intended + (opts.drain if drain is None else drain)
            # The count lives in the listener's process: polled, as nothing here is awaitable.
            while listener.count < accepted and time.monotonic() < deadline:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
            if side_task is not None:
                await side_task
    finally:
        seen = await asyncio.to_thread(listener.stop)
    outcomes = [
        Outcome(
            intended=s.intended,
            started=s.started,
            status=s.status,
            arrived=seen.get(key),
        )
        for s, key in zip(sent, keys, strict=True)
        if key is not None
    ]
    figures = run_figures(outcomes, target_rate=rate, duration=duration)
    answered = [
        s.finished - s.started
        for s in sent
        if s.started is not None and s.finished is not None and 200 <= s.status < 300
    ]
    return RunResult(
        system=system.name,
        scenario=scenario,
        rate=rate,
        index=index,
        figures=figures,
        verdict=run_verdict(figures, p99_limit=p99_limit),
        http_p99=percentile(answered, 99) if answered else math.inf,
        statuses=dict(Counter(f"{s.status} {s.error}" if s.error else str(s.status) for s in sent)),
        peak_rss_mb=sampler.peak_rss(),
        cpu_cores=sampler.cpu_share(),
        backlogs=backlogs,
        rss_series={
            name: [
                (round(at - sent[0].intended, 2), round(mb, 1)) for at, mb in sampler.series(name)
            ]
            for name in sampler.peak_rss()
        },
    )


async def backlogs_of(system: System) -> list[Backlog]:
    """What waits where (switchboard only: the raw pipeline keeps no Kafka commits)."""
    if not isinstance(system, Switchboard):
        return []
    try:
        found = await consumer_backlogs(system.infra.kafka, system.topic_prefix)
        found += await asyncio.to_thread(
            relay_backlogs, system.infra.database_url, system.schema_prefix
        )
    except Exception as error:  # a figure for the record, never a reason to stop the bench
        return [Backlog(f"unavailable: {error!r}", "", 0)]
    return found


# --- ongoing conversations -------------------------------------------------------------


def channel_of(system: System, what: str) -> str:
    tag = system.tag if isinstance(system, Switchboard) else system.config.schema
    return f"bench_{tag}_{what}"


async def started(system: System, opts: Options, prepare: Hook) -> System:
    """``prepare`` a system; stop it (and remove its data) if that fails."""
    try:
        await prepare(system)
    except BaseException:
        await system.stop()
        if not opts.keep:
            await system.cleanup()
        raise
    return system


async def start_for_ongoing(system: System, opts: Options, work_dir: Path) -> None:
    """Start the system, install the arrival trigger, open ``--contacts`` conversations."""
    await system.start()
    await asyncio.to_thread(
        arrivals.execute, system.conninfo, system.history_trigger(channel_of(system, "h"))
    )
    contacts = contacts_of(opts)
    stamp = int(time.time())
    bodies = [
        sign(
            system.secret,
            text_message(system.phone_number_id, c, f"wamid.open.{c}", "hola", stamp),
        )
        for c in contacts
    ]
    items = steady(opts.warmup_rate, len(contacts) / opts.warmup_rate)
    result = await measure(
        system,
        scenario="warm-up",
        rate=opts.warmup_rate,
        duration=len(contacts) / opts.warmup_rate,
        index=0,
        items=items,
        bodies=bodies,
        keys=[f"wamid.open.{c}" for c in contacts],
        channel=channel_of(system, "h"),
        opts=opts,
        work_dir=work_dir / f"{system.name}-warm-up",
        p99_limit=math.inf,
        drain=WARM_UP_DRAIN_SECONDS,
    )
    if result.figures.drained < len(contacts):
        raise RuntimeError(
            f"{system.name}: only {result.figures.drained} of {len(contacts)} first messages"
            f" reached the history within {WARM_UP_DRAIN_SECONDS:.0f} s (statuses"
            f" {result.statuses}); the system is not working:\n{system.log_tail()}"
        )


def contacts_of(opts: Options) -> list[str]:
    return [f"5730{n:08d}" for n in range(opts.contacts)]


async def ongoing_run(
    system: System,
    rate: float,
    index: int,
    opts: Options,
    work_dir: Path,
    *,
    duration: float | None = None,
    while_sending: Hook | None = None,
) -> RunResult:
    duration = opts.duration if duration is None else duration
    contacts = contacts_of(opts)
    run_id = uuid.uuid4().hex[:8]
    items = steady(rate, duration)
    stamp = int(time.time())
    keys = [f"wamid.bench.{run_id}.{n}" for n in range(len(items))]
    bodies = [
        sign(
            system.secret,
            text_message(
                system.phone_number_id, contacts[n % len(contacts)], key, f"mensaje {n}", stamp
            ),
        )
        for n, key in enumerate(keys)
    ]
    return await measure(
        system,
        scenario="ongoing",
        rate=rate,
        duration=duration,
        index=index,
        items=items,
        bodies=bodies,
        keys=keys,
        channel=channel_of(system, "h"),
        opts=opts,
        work_dir=work_dir / f"{system.name}-ongoing-{rate:g}-{index}",
        p99_limit=opts.p99_limit,
        while_sending=while_sending,
    )


# --- new conversations through a flow to a hand-off ------------------------------------


async def start_for_handoff(system: Switchboard) -> None:
    await system.start()
    await asyncio.to_thread(
        arrivals.execute,
        system.conninfo,
        arrivals.inbox_trigger(system.projections, channel_of(system, "i")),
    )


def handoff_flow(group_id: str) -> dict[str, Any]:
    """Three blocks: greet -> ask with buttons -> connect_to_agent (available)."""
    return {
        "name": "Bench hand-off",
        "start": "greet",
        "blocks": [
            {"id": "greet", "type": "message", "text": "Hola {{contact.name}}", "next": "ask"},
            {
                "id": "ask",
                "type": "question",
                "text": "¿Te comunico con un asesor?",
                "variable": "choice",
                "buttons": [
                    {"id": "talk", "title": "Hablar con un asesor"},
                    {"id": "later", "title": "Más tarde"},
                ],
                "next": "agent",
                # An unexpected answer also ends with an agent: still three blocks.
                "fallback": "agent",
            },
            {
                "id": "agent",
                "type": "connect_to_agent",
                "group": group_id,
                "rotation": "available",
                "text": "Te comunico con un asesor",
            },
        ],
    }


class Api:
    """The HTTP API as an admin (and the agents) use it, retried while a command is still
    being decided (202, or 401/404 until the directory's verdict reaches the read models)."""

    def __init__(self, session: aiohttp.ClientSession, url: str) -> None:
        self.session = session
        self.url = url

    async def call(
        self, method: str, path: str, token: str, body: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        deadline = time.monotonic() + SETUP_TIMEOUT_SECONDS
        while True:
            async with self.session.request(
                method,
                self.url + path,
                json=body,
                headers={"Authorization": f"Bearer {token}"},
            ) as response:
                text = await response.text()
                if response.status in (200, 201, 202):
                    answer: dict[str, Any] = await response.json(content_type=None)
                    return answer
                if response.status not in (401, 404, 422) or time.monotonic() > deadline:
                    raise RuntimeError(f"{method} {path}: {response.status} {text[:500]}")
            await asyncio.sleep(0.5)


async def prepare_agents(system: Switchboard, conversations_planned: int, index: int) -> int:
    """A new group with enough available agents for the run, and the flow that hands off to
    it chosen for the number; the number of agents."""
    agents = math.ceil(conversations_planned * 1.25 / AGENT_CAPACITY)
    admin = system.admin_token
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
        api = Api(session, system.url)
        group = (await api.call("POST", "/api/groups", admin, {"name": f"Bench {index}"}))[
            "group_id"
        ]
        limit = asyncio.Semaphore(8)

        async def agent(n: int) -> None:
            async with limit:
                member = await api.call(
                    "POST",
                    "/api/members",
                    admin,
                    {"name": f"Agent {index}.{n}", "role": "agent", "capacity": AGENT_CAPACITY},
                )
                await api.call("PUT", f"/api/groups/{group}/members/{member['member_id']}", admin)
                await api.call("PUT", "/api/me/status", member["token"], {"status": "available"})

        await asyncio.gather(*(agent(n) for n in range(agents)))
        flow = await api.call("POST", "/api/flows", admin, handoff_flow(group))
        await api.call(
            "PUT",
            f"/api/numbers/{system.phone_number_id}/flow",
            admin,
            {"flow_id": flow["flow_id"]},
        )
        deadline = time.monotonic() + SETUP_TIMEOUT_SECONDS
        while True:
            roster = await api.call("GET", f"/api/groups/{group}/roster", admin)
            if sum(1 for m in roster["members"] if m["status"] == "available") == agents:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"the {agents} agents of group {group} are not all available")
            await asyncio.sleep(0.5)
        await probe_handoff(system, api, index)
    return agents


async def probe_handoff(system: Switchboard, api: Api, index: int) -> None:
    """One conversation through the whole flow before the clock starts.

    The API answers once the read models show the flow chosen, but each service learns it
    from the directory's events at its own pace, and a conversation runs the flow active at
    its start, in Meta's whole-second timestamps. So: wait for the next second, then a probe
    customer must get the bot's question and, after tapping, an agent.
    """
    await asyncio.sleep(1.0 - time.time() % 1.0 + 0.01)
    contact = f"56{index:03d}0000000"
    stamp = int(time.time())
    first = sign(
        system.secret,
        text_message(system.phone_number_id, contact, f"wamid.probe.{index}.a", "hola", stamp),
    )
    tap = sign(
        system.secret,
        button_reply(
            system.phone_number_id,
            contact,
            f"wamid.probe.{index}.b",
            button_id="talk",
            title="Hablar con un asesor",
            timestamp=stamp,
        ),
    )
    admin = system.admin_token
    for body in (first, tap):
        async with api.session.post(
            system.url + "/webhooks/whatsapp",
            data=body.body,
            headers={"Content-Type": "application/json", "X-Hub-Signature-256": body.signature},
        ) as response:
            if response.status != 200:
                raise RuntimeError(f"the probe's webhook got {response.status}")
    deadline = time.monotonic() + SETUP_TIMEOUT_SECONDS
    lines: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        found = await api.call("GET", f"/api/conversations?contact={contact}", admin)
        if found["conversations"]:
            conversation = found["conversations"][0]
            if conversation.get("assignment_state") == "assigned":
                return
            history = await api.call(
                "GET", f"/api/conversations/{conversation['conversation_id']}/history", admin
            )
            lines = history["history"]
        await asyncio.sleep(0.5)
    said = [f"{line['author_kind']}: {line['text']}" for line in lines]
    raise RuntimeError(f"the probe conversation was not assigned to an agent; its history: {said}")


async def handoff_run(
    system: Switchboard, rate: float, index: int, opts: Options, work_dir: Path
) -> RunResult:
    planned = round(rate * opts.duration)
    await prepare_agents(system, planned, index)
    items = conversations(rate, opts.duration, opts.think)
    run_id = uuid.uuid4().hex[:6]
    stamp = int(time.time())
    contacts = [f"57{index:03d}{n:07d}" for n in range(planned)]
    bodies: list[SignedBody] = []
    for n, contact in enumerate(contacts):
        bodies.append(
            sign(
                system.secret,
                text_message(
                    system.phone_number_id, contact, f"wamid.new.{run_id}.{n}.a", "hola", stamp
                ),
            )
        )
        bodies.append(
            sign(
                system.secret,
                button_reply(
                    system.phone_number_id,
                    contact,
                    f"wamid.new.{run_id}.{n}.b",
                    button_id="talk",
                    title="Hablar con un asesor",
                    timestamp=stamp + 1,
                ),
            )
        )
    # The answer (odd body) is what is measured, by its contact.
    keys = [contacts[item.body // 2] if item.measured else None for item in items]
    return await measure(
        system,
        scenario="handoff",
        rate=rate,
        duration=opts.duration,
        index=index,
        items=items,
        bodies=bodies,
        keys=keys,
        channel=channel_of(system, "i"),
        opts=opts,
        work_dir=work_dir / f"handoff-{rate:g}-{index}",
        p99_limit=opts.handoff_p99_limit,
    )


# --- sweeps ----------------------------------------------------------------------------


NewSystem = Callable[[], Awaitable[System]]
RunOne = Callable[[System, float, int], Awaitable[RunResult]]


async def sweep(
    *,
    name: str,
    scenario: str,
    rates: Sequence[float],
    opts: Options,
    p99_limit: float,
    new_system: NewSystem,
    run_one: RunOne,
    say: Callable[[str], None],
    into: list[Sweep],
) -> tuple[Sweep, System]:
    """Every rate ``opts.runs`` times, lowest first, on a system kept while it drains.

    The sweep goes into ``into`` at once, so the runs done before a failure are reported.
    Returns it and the system as the last run left it (the caller stops it).
    """
    result = Sweep(name, scenario, p99_limit)
    into.append(result)
    system = await new_system()
    try:
        dirty = False
        for rate in rates:
            saturated_at = next(
                (
                    lower
                    for lower in sorted(result.runs)
                    if lower < rate
                    and saturated([run.figures for run in result.runs[lower]], target_rate=lower)
                ),
                None,
            )
            if opts.skip_saturated and saturated_at is not None:
                drained = median_drained(result.runs[saturated_at])
                result.skipped[rate] = (
                    f"not run: {saturated_at:g}/s already drained only {drained:.0f}/s"
                )
                say(f"  {name} {scenario} {rate:g}/s: {result.skipped[rate]}")
                continue
            for index in range(opts.runs):
                fresh = False
                if dirty:
                    say(f"  {name}: the last run left messages in flight; starting a fresh system")
                    await system.stop()
                    if not opts.keep:
                        await system.cleanup()
                    system = await new_system()
                    fresh = True
                run = await run_one(system, rate, index)
                run.fresh_system = fresh
                result.runs.setdefault(rate, []).append(run)
                f = run.figures
                say(
                    f"  {name} {scenario} {rate:g}/s run {index + 1}: sent {f.send_rate:.0f}/s,"
                    f" drained {f.drained}/{f.scheduled} at {f.drained_rate:.0f}/s,"
                    f" p50 {fmt_seconds(f.latency.p50)} p99 {fmt_seconds(f.latency.p99)}"
                    + ("" if run.verdict.sustained else f"  [{'; '.join(run.verdict.reasons)}]")
                    + ("" if set(run.statuses) == {"200"} else f" answers: {run.statuses}")
                )
                dirty = f.drained < f.accepted or any(True for _ in dead_processes(system))
    except BaseException:
        # Never leave a system running behind a failure (it would hold ports, connections
        # and CPU for whatever runs next).
        await system.stop()
        if not opts.keep:
            await system.cleanup()
        raise
    return result, system


def median_drained(runs: Sequence[RunResult]) -> float:
    return Spread.of([run.figures.drained_rate for run in runs]).median
