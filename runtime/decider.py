"""The decider runner: load the stream a record concerns, decide, wrap, number and append.

A service says *which stream* and *which decider* (its initial state, ``evolve`` and a pure
``decide``); the runner does the rest through the unit of work it is given
(``runtime.work``):

* the state comes from the unit of work if this batch already changed the stream, else from
  a bounded LRU cache of recently decided streams (state and version), else from the store;
* the new events are numbered after the version the state was read at and staged; they are
  appended, with the record's position, when the unit of work commits;
* a cached state that another writer has moved on (another replica, the expiry timer) shows
  as a version conflict at commit: the runner drops the stream's entry and the runtime
  decides again on what the store holds, under one retry policy
  (``runtime.consumer.CONFLICT_ATTEMPTS``).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar
from uuid import UUID

from events.base import Payload
from events.envelope import Envelope

if TYPE_CHECKING:
    from runtime.work import Work

S = TypeVar("S")

DEFAULT_CACHE_SIZE = 10_000


@dataclass(frozen=True)
class Decider(Generic[S]):
    """How one kind of stream folds: its state before any event, and ``evolve``.

    ``name`` keys the cache: two deciders never share a cached state.
    """

    name: str
    initial: Callable[[UUID], S]
    evolve: Callable[[S, Payload], S]

    def fold(self, stream_id: UUID, payloads: Iterable[Payload], state: S | None = None) -> S:
        folded = self.initial(stream_id) if state is None else state
        for payload in payloads:
            folded = self.evolve(folded, payload)
        return folded


@dataclass(frozen=True)
class Folded:
    """A stream as far as it was read: its version, and its state under ``decider`` (None
    when only its version was needed, e.g. a stream a dead letter starts)."""

    version: int
    decider: Decider[Any] | None = None
    state: Any = None


class StreamCache:
    """Recently decided streams, shared by every unit of work of one store in a process.

    Entries are written only after a commit, so an entry is never ahead of the store; it
    may be behind (another process appended since), which the append's version check
    catches. Thread-safe: batches of two subscriptions may commit from two worker threads.
    """

    def __init__(self, size: int = DEFAULT_CACHE_SIZE) -> None:
        self.size = size
        self._entries: OrderedDict[UUID, Folded] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, stream_id: UUID) -> Folded | None:
        with self._lock:
            entry = self._entries.get(stream_id)
            if entry is not None:
                self._entries.move_to_end(stream_id)
            return entry

    def put_all(self, entries: Iterable[tuple[UUID, Folded]]) -> None:
        with self._lock:
            for stream_id, entry in entries:
                self._entries[stream_id] = entry
                self._entries.move_to_end(stream_id)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)

    def drop(self, stream_ids: Iterable[UUID]) -> None:
        with self._lock:
            for stream_id in stream_ids:
                self._entries.pop(stream_id, None)

    def __len__(self) -> int:
        return len(self._entries)


def decide_on(
    work: Work,
    decider: Decider[S],
    stream_id: UUID,
    decide: Callable[[S], Sequence[Payload]],
    wrap: Callable[[list[Payload]], list[Envelope]],
) -> list[Envelope]:
    """Fold ``stream_id`` with ``decider``, decide, wrap the payloads into envelopes and stage
    them as the stream's next events; the envelopes staged."""
    state = work.fold(decider, stream_id)
    envelopes = wrap(list(decide(state)))
    work.emit(stream_id, envelopes)
    return envelopes
