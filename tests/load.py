"""A steady load of signed webhooks that retries what is refused, as Meta does.

Each message is its own task: it is posted until the gateway answers 200 (a 503, a timeout or
a refused connection is retried with a growing wait, as Meta retries a delivery), so
every message ends accepted exactly once from the sender's point of view, however often it
was sent. Any other answer (a 4xx, a 500) is kept in ``unexpected``: an outage must never
turn a valid delivery into one.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

import httpx

from tests.conftest import TEST_APP_SECRET
from tests.webhooks import Text, messages_webhook, signed_headers


@dataclass
class WebhookLoad:
    http: httpx.AsyncClient
    phone_number_id: str
    contacts: tuple[str, ...]
    per_second: float = 20.0
    # Meta backs off between retries of a refused delivery; so does this load (doubling, capped).
    retry_seconds: float = 0.5
    max_retry_seconds: float = 4.0
    tag: str = "load"
    # A contact's first messages (e.g. "hola", then a flow's answer); later ones are numbered.
    script: tuple[str, ...] = ()
    accepted: dict[str, str] = field(default_factory=dict)  # wamid -> contact
    answers: Counter[int | str] = field(default_factory=Counter)
    unexpected: list[tuple[str, int | str, str]] = field(default_factory=list)
    # (monotonic time of the answer, status) of every answer, to measure a recovery.
    timeline: list[tuple[float, int | str]] = field(default_factory=list)
    sent: int = 0
    _senders: set[asyncio.Task[None]] = field(default_factory=set)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _running: asyncio.Event = field(default_factory=asyncio.Event)
    # Requests on the wire at once. Hundreds of senders queued in one httpx pool make its
    # bookkeeping quadratic and starve this process's loop (seen: no request sent for
    # minutes while 800 messages waited); Meta's senders are bounded too.
    _on_the_wire: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(50))
    _task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> WebhookLoad:
        self._running.set()
        self._task = asyncio.create_task(self._generate())
        return self

    def pause(self) -> None:
        """No new messages until ``resume`` (those already sent are still retried)."""
        self._running.clear()

    def resume(self) -> None:
        self._running.set()

    async def __aexit__(self, *exc: object) -> None:
        """Whatever happened, no sender outlives the test (nor its HTTP client)."""
        self._stop.set()
        self._running.set()
        for task in [*self._senders, *([self._task] if self._task else [])]:
            task.cancel()
        await asyncio.gather(*self._senders, return_exceptions=True)

    async def stop(self, *, drain_within: float) -> None:
        """Stop creating messages; wait until every one sent so far is accepted."""
        self._stop.set()
        self._running.set()
        if self._task is not None:
            await self._task
        if self._senders:
            _done, pending = await asyncio.wait(self._senders, timeout=drain_within)
            for task in pending:
                task.cancel()
            assert not pending, (
                f"{len(pending)} messages still not accepted {drain_within:.0f}s after the load"
                f" stopped; answers so far: {dict(self.answers)}"
            )

    @property
    def pending(self) -> int:
        """Messages sent and not accepted yet."""
        return len(self._senders)

    def first_accepted_after(self, moment: float) -> float | None:
        """Seconds from ``moment`` to the first 200 answered after it."""
        for at, status in self.timeline:
            if at >= moment and status == 200:
                return at - moment
        return None

    def refused_after(self, moment: float) -> int:
        return sum(1 for at, status in self.timeline if at >= moment and status != 200)

    async def _generate(self) -> None:
        interval = 1.0 / self.per_second
        next_at = time.monotonic()
        while not self._stop.is_set():
            if not self._running.is_set():
                await self._running.wait()
                next_at = time.monotonic()
                continue
            contact = self.contacts[self.sent % len(self.contacts)]
            wamid = f"wamid.{self.tag}.{self.sent:05d}"
            turn = self.sent // len(self.contacts)  # the contact's n-th message
            text = self.script[turn] if turn < len(self.script) else f"message {wamid}"
            self.sent += 1
            task = asyncio.create_task(self._deliver(contact, wamid, text))
            self._senders.add(task)
            task.add_done_callback(self._senders.discard)
            next_at += interval
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))

    async def _deliver(self, contact: str, wamid: str, text: str) -> None:
        body = messages_webhook(
            self.phone_number_id, [Text(contact, wamid, text, int(time.time()))]
        )
        headers = signed_headers(TEST_APP_SECRET, body)
        wait = self.retry_seconds
        while True:
            status: int | str
            try:
                async with self._on_the_wire:
                    response = await self.http.post(
                        "/webhooks/whatsapp", content=body, headers=headers
                    )
                status = response.status_code
            except httpx.TransportError as error:
                status = type(error).__name__
                response = None
            self.answers[status] += 1
            self.timeline.append((time.monotonic(), status))
            if status == 200:
                self.accepted[wamid] = contact
                return
            if status != 503 and response is not None:
                self.unexpected.append((wamid, status, response.text[:300]))
                return
            if status == 503 and response is not None:
                assert response.headers.get("retry-after"), "a 503 must say when to retry"
            await asyncio.sleep(wait)
            wait = min(wait * 2, self.max_retry_seconds)


async def history_wamids(
    http: httpx.AsyncClient, token: str, contacts: tuple[str, ...]
) -> Counter[str]:
    """How many times each customer message shows in its contact's conversations."""
    auth = {"Authorization": f"Bearer {token}"}
    seen: Counter[str] = Counter()
    for contact in contacts:
        found = await http.get("/api/conversations", params={"contact": contact}, headers=auth)
        assert found.status_code == 200, found.text
        for conversation in found.json()["conversations"]:
            history = await http.get(
                f"/api/conversations/{conversation['conversation_id']}/history", headers=auth
            )
            assert history.status_code == 200, history.text
            seen.update(
                line["wamid"]
                for line in history.json()["history"]
                if line["author_kind"] == "customer" and line["wamid"]
            )
    return seen


async def history_difference(
    http: httpx.AsyncClient,
    token: str,
    contacts: tuple[str, ...],
    accepted: Iterable[str],
    *,
    within: float,
) -> dict[str, list[str]]:
    """Wait until every accepted message shows in the history (at most ``within`` seconds);
    then what is missing from it, what shows more than once, and what was never accepted."""
    expected = set(accepted)
    deadline = time.monotonic() + within
    while True:
        seen = await history_wamids(http, token, contacts)
        missing = sorted(expected - set(seen))
        if not missing or time.monotonic() > deadline:
            return {
                "missing": missing,
                "repeated": sorted(wamid for wamid, count in seen.items() if count > 1),
                "never accepted": sorted(set(seen) - expected),
            }
        await asyncio.sleep(1)
