"""The open-loop schedule (pure): when each request is meant to go, whatever came before.

The generator fires request ``i`` at ``t0 + offset_i`` and latency counts from there, so a
slow answer delays nobody's *intended* time: the queue that builds in front of a saturated
system shows up as latency instead of vanishing from the figures (no coordinated omission).
The only wait allowed is an ordering one: a customer's answer goes after the gateway
accepted the same customer's first message, as on WhatsApp, and its latency still counts
from its own intended time.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Item:
    """One request of the schedule."""

    offset: float  # seconds after the schedule's start
    body: int  # index of its signed body
    after: int | None = None  # index of the item that must be accepted first
    measured: bool = True  # whether its arrival is what the run measures


def steady(rate: float, duration: float) -> list[Item]:
    """``rate`` requests a second for ``duration`` seconds, evenly spaced."""
    if rate <= 0 or duration <= 0:
        raise ValueError(f"rate and duration must be positive, got {rate}/s for {duration}s")
    count = round(rate * duration)
    return [Item(offset=i / rate, body=i) for i in range(count)]


def conversations(rate: float, duration: float, think: float) -> list[Item]:
    """New conversations at ``rate``/s: a first message, then ``think`` seconds later the
    answer to the bot's question (which the run measures). Bodies ``2i`` and ``2i + 1``
    are conversation ``i``'s first message and answer. Ordered by offset."""
    if think < 0:
        raise ValueError(f"think time must be >= 0, got {think}")
    items: list[Item] = []
    for i, first in enumerate(steady(rate, duration)):
        items.append(Item(first.offset, 2 * i, measured=False))
        items.append(Item(first.offset + think, 2 * i + 1))
    items.sort(key=lambda item: (item.offset, item.body))
    index = {item.body: n for n, item in enumerate(items)}
    return [
        Item(item.offset, item.body, index[item.body - 1], True) if item.measured else item
        for item in items
    ]


def due(offsets: Sequence[float], elapsed: float, start: int) -> int:
    """The end (exclusive) of the items from ``start`` whose time has come at ``elapsed``."""
    return max(bisect.bisect_right(offsets, elapsed, lo=start), start)


def split(items: Sequence[Item], senders: int) -> list[list[int]]:
    """Indices of ``items`` per sender, round-robin, each list in schedule order.

    Ordering waits (``after``) must stay within one sender, so an item goes to the
    sender of the item it waits for.
    """
    if senders < 1:
        raise ValueError("at least one sender")
    owner: dict[int, int] = {}
    shares: list[list[int]] = [[] for _ in range(senders)]
    turn = 0
    for n, item in enumerate(items):
        if item.after is not None:
            sender = owner[item.after]
        else:
            sender = turn % senders
            turn += 1
        owner[n] = sender
        shares[sender].append(n)
    return shares
