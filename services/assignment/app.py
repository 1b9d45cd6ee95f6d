"""The assignment consumer process (``switchboard run assignment``): what it reads, what it
stores, what handles each record.

Two subscriptions, one store (schema ``assignment``):

* the router (``assignment-router``): ``directory.events`` and ``conversation.events`` into
  the service's views of members, groups, rosters and closed conversations, and the
  ``GroupNudged`` records they call for;
* the decider (``assignment``): ``assignment.requests`` (hand-offs, claims, transfers,
  nudges), keyed by group so one consumer decides for a group at a time and in order, into
  each group's stream of decisions. A batch holding a hand-off, claim or transfer waits,
  before its transaction opens, until the router's view has read everything
  ``directory.events`` held when those records arrived (:func:`roster_caught_up`).

The relay publishes the nudges to ``assignment.requests`` (keyed by group) and the decisions
to ``assignment.events`` (keyed by conversation).
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager

from faststream import FastStream

from events.catalogue import (
    ASSIGNMENT_EVENTS_TOPIC,
    CONVERSATION_EVENTS_TOPIC,
    DEAD_LETTERS,
    DIRECTORY_EVENTS_TOPIC,
    HAND_OFF_REQUESTS_TOPIC,
)
from runtime.app import consumer_app
from runtime.consumer import Prepare
from runtime.postgres import open_recorder
from runtime.process import Binding, Context, Service, Subscription
from runtime.records import Record
from runtime.views import CaughtUp, caught_up_with
from services.assignment.handlers import DECIDED_ON_THE_ROSTER, DeciderHandler, RouterHandler
from services.assignment.recorder import AssignmentRecorder
from services.settings import Settings


def roster_caught_up(seen: CaughtUp) -> Prepare:
    """Before a hand-off, claim or transfer is decided, the router's view has read all that
    ``directory.events`` held when the record arrived.

    The two topics are read independently, so a hand-off may overtake the roster, statuses
    or group published just before it; deciding on such a view would assign by a roster
    that is already out of date (or send the conversation to the workspace queue for a
    group not read yet). One look at the topic's end offsets covers every record received
    before the look, so a burst of hand-offs costs one look, not one each. Nudges need no
    look: the router made them from its view.
    """

    async def prepare(records: Sequence[Record]) -> None:
        deliveries = [
            record.delivery
            for record in records
            if isinstance(record.envelope.payload, DECIDED_ON_THE_ROSTER)
        ]
        if deliveries:
            await seen.cover(deliveries, what="the rosters and statuses of the groups")

    return prepare


@asynccontextmanager
async def start(context: Context) -> AsyncIterator[Mapping[str, Binding]]:
    recorder = context.store.recorder
    assert isinstance(recorder, AssignmentRecorder)
    async with caught_up_with(
        DIRECTORY_EVENTS_TOPIC, context.settings, context.store.position
    ) as seen:
        yield {
            "assignment-router": Binding(RouterHandler(recorder)),
            "assignment": Binding(DeciderHandler(recorder), prepare=roster_caught_up(seen)),
        }


SERVICE = Service(
    name="assignment",
    open_recorder=functools.partial(open_recorder, service="assignment", build=AssignmentRecorder),
    subscriptions=(
        Subscription(
            "assignment",
            (HAND_OFF_REQUESTS_TOPIC,),
            "Hand-offs, claims, transfers and nudges, one group at a time: who takes each"
            " conversation, and why.",
        ),
        Subscription(
            "assignment-router",
            (DIRECTORY_EVENTS_TOPIC, CONVERSATION_EVENTS_TOPIC),
            "Members, groups, statuses and closed conversations: the assignment service's"
            " views, and nudges to the groups whose queue they may move.",
        ),
    ),
    start=start,
    emits=(ASSIGNMENT_EVENTS_TOPIC, HAND_OFF_REQUESTS_TOPIC, DEAD_LETTERS),
)


def create_app(settings: Settings) -> FastStream:
    return consumer_app(SERVICE, settings)
