"""Is a failure the infrastructure being away (wait, then do the same work again) or the work's
own (retry a few times, then park it)?

Every process asks this one module, so a database restart or a broker restart is never
mistaken for a bad record: a record is parked only for what is wrong with it. The answer
looks at the whole chain of causes, because libraries wrap what they catch (eventsourcing
turns psycopg's errors into its own; a handler may raise its own error from a driver's).
"""

from __future__ import annotations

from collections.abc import Iterator

import eventsourcing.persistence as eventsourcing_errors
import psycopg
from aiokafka import errors as kafka_errors

from runtime.producer import BrokerUnavailable

# psycopg's OperationalError covers a lost or refused connection, "terminating connection due
# to administrator command" (AdminShutdown), the server starting up or shutting down, and the
# pool's PoolTimeout (no connection within its timeout); InterfaceError a connection already
# closed. Lock timeouts and deadlocks are OperationalErrors too: contention passes, so waiting
# is right for them as well. eventsourcing re-raises them as its own two classes.
DATABASE_DOWN: tuple[type[BaseException], ...] = (
    psycopg.OperationalError,
    psycopg.InterfaceError,
    eventsourcing_errors.OperationalError,
    eventsourcing_errors.InterfaceError,
)

# aiokafka marks the errors a later attempt can get past as ``retriable``; a timeout or a
# connection that cannot be made is the broker being away whatever the flag says.
BROKER_DOWN: tuple[type[BaseException], ...] = (
    kafka_errors.KafkaConnectionError,
    kafka_errors.KafkaTimeoutError,
    kafka_errors.NodeNotReadyError,
    kafka_errors.RequestTimedOutError,
)


class Lagging(Exception):
    """Something this work depends on is behind (a view catching up): the same work succeeds
    later, and parking it would lose it for nothing."""


def causes(error: BaseException) -> Iterator[BaseException]:
    """``error`` and every exception it was raised from or while handling, once each."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def database_unavailable(error: BaseException) -> bool:
    return any(isinstance(cause, DATABASE_DOWN) for cause in causes(error))


def broker_unavailable(error: BaseException) -> bool:
    for cause in causes(error):
        if isinstance(cause, (*BROKER_DOWN, BrokerUnavailable)):
            return True
        if isinstance(cause, kafka_errors.KafkaError) and cause.retriable:
            return True
    return False


def outage_of(error: BaseException) -> str | None:
    """What is away if ``error`` says the infrastructure is (None: the work itself failed)."""
    if database_unavailable(error):
        return "database"
    if broker_unavailable(error):
        return "kafka"
    if any(isinstance(cause, Lagging) for cause in causes(error)):
        return "view"
    return None
