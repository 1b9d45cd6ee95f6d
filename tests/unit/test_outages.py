"""Telling an outage (wait and retry) from a failure of the work itself (retry, then park),
and a failed publish that may pass from one that never will. Real exception classes, raised
the way the libraries raise them."""

from __future__ import annotations

import eventsourcing.persistence as es
import psycopg
import pytest
from aiokafka import errors as kafka_errors
from psycopg_pool import PoolTimeout

from events.codec import CodecError
from runtime.outages import broker_unavailable, database_unavailable, outage_of
from runtime.producer import (
    BrokerUnavailable,
    RecordTooLarge,
    RecordUnencodable,
    classify,
)
from runtime.relay.relay import Settled, settle
from runtime.store import StreamConflict
from runtime.views import ViewBehind

pytestmark = pytest.mark.unit


def raised_from(error: BaseException, cause: BaseException) -> BaseException:
    try:
        raise error from cause
    except BaseException as raised:
        return raised


def raised_while_handling(error: BaseException, first: BaseException) -> BaseException:
    try:
        try:
            raise first
        except BaseException:
            raise error  # noqa: B904 - the point: chained implicitly, through __context__
    except BaseException as raised:
        return raised


@pytest.mark.parametrize(
    "error",
    [
        psycopg.errors.AdminShutdown("terminating connection due to administrator command"),
        psycopg.OperationalError("connection failed: Connection refused"),
        psycopg.InterfaceError("the connection is closed"),
        PoolTimeout("couldn't get a connection after 10.00 sec"),
        es.OperationalError("terminating connection due to administrator command"),
        es.InterfaceError("connection already closed"),
        # A handler's own error raised from a driver's still says the database is away.
        raised_from(RuntimeError("could not load the route"), psycopg.errors.AdminShutdown()),
        raised_while_handling(ValueError("cleanup failed"), psycopg.OperationalError("refused")),
    ],
)
def test_every_kind_of_lost_or_refused_connection_is_the_database_being_away(
    error: BaseException,
) -> None:
    assert database_unavailable(error)
    assert outage_of(error) == "database"


@pytest.mark.parametrize(
    "error",
    [
        es.IntegrityError("duplicate key value violates unique constraint"),
        es.DataError("invalid input syntax for type uuid"),
        psycopg.errors.UniqueViolation("duplicate key"),
        CodecError("unknown event type 'x'"),
        StreamConflict("a stream"),
        ValueError("a bug"),
        KeyError("payload"),
    ],
)
def test_what_is_wrong_with_the_record_is_not_an_outage(error: BaseException) -> None:
    assert not database_unavailable(error)
    assert not broker_unavailable(error)
    assert outage_of(error) is None


@pytest.mark.parametrize(
    "error",
    [
        kafka_errors.KafkaConnectionError("Unable to bootstrap from [('127.0.0.1', 29092)]"),
        kafka_errors.KafkaTimeoutError(),
        kafka_errors.NodeNotReadyError("node 1"),
        kafka_errors.RequestTimedOutError(),
        kafka_errors.NotLeaderForPartitionError(),
        BrokerUnavailable("not acknowledged within 3s"),
    ],
)
def test_a_broker_that_cannot_be_reached_or_answer_is_kafka_being_away(
    error: BaseException,
) -> None:
    assert broker_unavailable(error)
    assert outage_of(error) == "kafka"


def test_a_view_still_catching_up_is_waited_for_not_counted_against_the_record() -> None:
    assert outage_of(ViewBehind("the view of directory.events is behind")) == "view"


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        # aiokafka's own check before queueing, and the broker's verdict on a batch.
        (kafka_errors.MessageSizeTooLargeError("The message is 6000000 bytes"), RecordTooLarge),
        (kafka_errors.RecordTooLargeError(), RecordTooLarge),
        (kafka_errors.RecordListTooLargeError(), RecordTooLarge),
        (kafka_errors.InvalidTimestampError(), RecordUnencodable),
        (kafka_errors.OutOfOrderSequenceNumber(), BrokerUnavailable),
        (kafka_errors.NotEnoughReplicasError(), BrokerUnavailable),
        (kafka_errors.LeaderNotAvailableError(), BrokerUnavailable),
        (kafka_errors.KafkaConnectionError("refused"), BrokerUnavailable),
        (kafka_errors.KafkaTimeoutError(), BrokerUnavailable),
        (kafka_errors.UnknownTopicOrPartitionError(), BrokerUnavailable),
        (TimeoutError(), BrokerUnavailable),
    ],
)
def test_a_publish_failure_is_permanent_only_when_it_is_about_the_record(
    error: BaseException, kind: type[Exception]
) -> None:
    failure = classify(error)
    assert type(failure) is kind
    assert failure.permanent == (kind is not BrokerUnavailable)
    assert type(error).__name__ in str(failure)


def test_the_relay_records_the_acknowledged_prefix_and_sends_the_rest_again() -> None:
    waited = BrokerUnavailable("no leader")
    assert settle([11, 12, 13, 14], [None, None, waited, None]) == Settled(12, None, waited)
    assert settle([11, 12], [waited, None]) == Settled(None, None, waited)
    assert settle([11, 12, 13], [None, None, None]) == Settled(13, None, None)


def test_the_relay_parks_a_record_that_can_never_be_published_once_all_before_it_are_in() -> None:
    too_large = RecordTooLarge("MessageSizeTooLargeError")
    waited = BrokerUnavailable("not sent: record 1 failed first")
    assert settle([11, 12, 13], [None, too_large, waited]) == Settled(11, 1, too_large)
    assert settle([11], [too_large]) == Settled(None, 0, too_large)
    # A record that failed for a passing reason before it: nothing is parked yet.
    assert settle([11, 12], [waited, too_large]) == Settled(None, None, waited)
