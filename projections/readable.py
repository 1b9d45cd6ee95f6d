"""Text from WhatsApp as the read models can hold it: NUL (U+0000) shown as U+FFFD.

A customer may send any character, NUL included, and the events keep the text whole. But
PostgreSQL refuses NUL in ``text`` columns and as ``\\u0000`` in ``jsonb``, and a projector
that fails on a line parks the event: the message (or, for a profile name, the whole
conversation) would disappear from the agents' screens. So every string the projector
writes passes through here, whatever column or JSON document it goes to: registered on the
projector's cursor, not called by each statement, so no new column can forget it.
"""

from __future__ import annotations

from typing import Any

import orjson
from psycopg import Cursor
from psycopg.types.json import set_json_dumps
from psycopg.types.string import StrDumperUnknown

NUL = "\x00"
REPLACEMENT = "\ufffd"


def readable(value: Any) -> Any:
    """``value`` with NUL replaced in every string of it (keys of objects included)."""
    if isinstance(value, str):
        return value.replace(NUL, REPLACEMENT) if NUL in value else value
    if isinstance(value, dict):
        return {readable(key): readable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [readable(item) for item in value]
    return value


class ReadableTextDumper(StrDumperUnknown):
    """Python strings to Postgres text (the default ``%s`` dumper) with NUL replaced."""

    def dump(self, obj: str) -> bytes:
        dumped: bytes = super().dump(readable(obj))  # type: ignore[assignment]
        return dumped


def _readable_json(value: Any) -> str:
    return orjson.dumps(readable(value)).decode()


def write_readably(cursor: Cursor[Any]) -> None:
    """Make every string written through ``cursor`` readable, in text and JSON alike."""
    cursor.adapters.register_dumper(str, ReadableTextDumper)
    set_json_dumps(_readable_json, cursor)
