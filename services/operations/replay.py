"""``switchboard replay conversation ID``: one conversation's timeline from the event stores."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TextIO
from uuid import UUID

import psycopg

from events.catalogue import build_registry
from services.operations.describe import json_line, line
from services.operations.stores import events_mentioning
from services.operations.timeline import timeline
from services.settings import Settings

EXIT_NOT_FOUND = 1
EXIT_USAGE = 2


def replay_conversation(
    settings: Settings,
    conversation: str,
    stores: Sequence[str],
    *,
    as_json: bool,
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
) -> int:
    """Print the timeline; 2 for an id that is not a UUID, 1 when no store knows it."""
    try:
        conversation_id = UUID(conversation)
    except ValueError:
        print(f"switchboard: {conversation!r} is not a conversation id (a UUID)", file=err)
        return EXIT_USAGE
    try:
        found = events_mentioning(settings, stores, conversation_id, build_registry())
    except psycopg.OperationalError as error:
        print(f"switchboard: the database cannot be read: {error}".rstrip(), file=err)
        return EXIT_NOT_FOUND
    for problem in found.undecodable:
        print(f"switchboard: skipped an undecodable stored event: {problem}", file=err)
    entries = timeline(found.entries, conversation_id)
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
