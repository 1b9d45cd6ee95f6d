"""``switchboard replay conversation ID``: one conversation's timeline from the event stores."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence
from typing import TextIO
from uuid import UUID

import psycopg
from aiokafka.errors import KafkaError

from events.catalogue import build_registry
from services.operations.command_topics import published_mentioning
from services.operations.describe import json_line, line
from services.operations.stores import events_mentioning
from services.operations.timeline import timeline, unstored
from services.settings import Settings

EXIT_NOT_FOUND = 1
EXIT_USAGE = 2


def replay_conversation(
    settings: Settings,
    conversation: str,
    stores: Sequence[str],
    *,
    as_json: bool,
    with_commands: bool = False,
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
) -> int:
    """Print the timeline; 2 for an id that is not a UUID, 1 when no store knows it."""
    try:
        conversation_id = UUID(conversation)
    except ValueError:
        print(f"switchboard: {conversation!r} is not a conversation id (a UUID)", file=err)
        return EXIT_USAGE
    registry = build_registry()
    try:
        found = events_mentioning(settings, stores, conversation_id, registry)
    except psycopg.OperationalError as error:
        print(f"switchboard: the database cannot be read: {error}".rstrip(), file=err)
        return EXIT_NOT_FOUND
    candidates = list(found.entries)
    problems = list(found.undecodable)
    if with_commands:
        try:
            published = asyncio.run(published_mentioning(settings, str(conversation_id), registry))
        except KafkaError as error:
            print(f"switchboard: Kafka cannot be read: {error}", file=err)
            return EXIT_NOT_FOUND
        candidates += unstored(found.entries, published.entries)
        problems += published.undecodable
    for problem in problems:
        print(f"switchboard: skipped an undecodable event: {problem}", file=err)
    entries = timeline(candidates, conversation_id)
    if not entries:
        where = ", ".join(settings.schema(store) for store in stores)
        print(
            f"switchboard: no event about conversation {conversation_id} in the stores ({where})",
            file=err,
        )
        return EXIT_NOT_FOUND
    for entry in entries:
        print(json_line(entry).decode() if as_json else line(entry), file=out)
    return 0
