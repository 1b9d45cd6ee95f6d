"""``switchboard dead-letters list|show ID|replay ID``: what was parked, why; putting it back."""

from __future__ import annotations

import asyncio
import sys
from typing import TextIO
from uuid import UUID

import orjson
import psycopg
from aiokafka.errors import KafkaError

from events.operations import DeadlineDeadLettered, RecordDeadLettered, StoredEventDeadLettered
from runtime.producer import PublishFailed
from services.operations import dead_letters
from services.operations.dead_letter_io import publish, read_dead_letters, stored_event
from services.operations.dead_letters import DeadLetter, NotReplayable
from services.settings import Settings

EXIT_FAILED = 1
EXIT_USAGE = 2


class CommandFailed(Exception):
    """A refusal to print on stderr, with the exit status it answers."""

    def __init__(self, message: str, status: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.status = status


def run(
    action: str,
    settings: Settings,
    wanted: str | None,
    *,
    as_json: bool = False,
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
) -> int:
    """Run one action; every refusal is a sentence on stderr and a status, never a traceback."""
    try:
        if action == "list":
            return _list(settings, as_json, out, err)
        dead_letter = _find(settings, wanted or "", err)
        if action == "show":
            print(
                orjson.dumps(
                    dead_letters.details(dead_letter), option=orjson.OPT_INDENT_2
                ).decode(),
                file=out,
            )
            return 0
        return _replay(settings, dead_letter, out)
    except CommandFailed as failure:
        print(f"switchboard: {failure}", file=err)
        return failure.status
    except (KafkaError, PublishFailed, psycopg.OperationalError) as error:
        print(f"switchboard: Kafka or the database cannot be reached: {error}", file=err)
        return EXIT_FAILED


def _read(settings: Settings, err: TextIO) -> list[DeadLetter]:
    found, problems = asyncio.run(read_dead_letters(settings))
    for problem in problems:
        print(
            f"switchboard: a record of the dead-letters topic is not a dead letter: {problem}",
            file=err,
        )
    return found


def _list(settings: Settings, as_json: bool, out: TextIO, err: TextIO) -> int:
    for dead_letter in _read(settings, err):
        if as_json:
            shown = dead_letters.row(dead_letter)
            print(
                orjson.dumps({**shown.__dict__, "offsets": list(dead_letter.offsets)}).decode(),
                file=out,
            )
        else:
            print(dead_letters.line(dead_letter), file=out)
    return 0


def _find(settings: Settings, wanted: str, err: TextIO) -> DeadLetter:
    try:
        dead_letter_id = UUID(wanted)
    except ValueError:
        raise CommandFailed(
            f"{wanted!r} is not a dead letter id (the UUID 'dead-letters list' shows)", EXIT_USAGE
        ) from None
    for dead_letter in _read(settings, err):
        if dead_letter.id == dead_letter_id:
            return dead_letter
    raise CommandFailed(f"no dead letter {dead_letter_id} on the dead-letters topic")


def _replay(settings: Settings, dead_letter: DeadLetter, out: TextIO) -> int:
    payload = dead_letter.envelope.payload
    try:
        match payload:
            case RecordDeadLettered():
                record = dead_letters.replay_record(payload)
            case StoredEventDeadLettered():
                stored_type, state = stored_event(settings, payload.store, payload.notification_id)
                record = dead_letters.replay_stored_event(stored_type, state, settings.topic_prefix)
            case DeadlineDeadLettered():
                raise NotReplayable(
                    "a deadline is no record: the expiry timer gave it up in its own store and"
                    " nothing re-arms it; close the conversation by hand"
                    f" (POST /api/conversations/{payload.conversation_id}/close) if it is due"
                )
            case _:
                raise NotReplayable(f"{payload.event_type} is not a dead letter")
    except NotReplayable as refusal:
        raise CommandFailed(f"dead letter {dead_letter.id} cannot be replayed: {refusal}") from None
    asyncio.run(publish(settings, record))
    print(
        f"replayed {dead_letter.id} to {record.topic}"
        f" (key {record.key.decode(errors='replace')!r})",
        file=out,
    )
    return 0
