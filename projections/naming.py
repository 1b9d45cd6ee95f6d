"""Names in history lines, as the history API shows them (pure).

A line mentions groups and members by id (the projector writes only what its event says;
see ``HistoryEntry.refs``); when the history is read, each id is replaced by the name the
read models hold for it now. An id with no known name (not projected yet, or a group that
never existed) stays as it is, so a line is never wrong, only less friendly.
"""

from __future__ import annotations

from collections.abc import Mapping


def named(text: str | None, refs: Mapping[str, str] | None, names: Mapping[str, str]) -> str | None:
    """``text`` with every id of ``refs`` replaced by its name in ``names`` (by id)."""
    if text is None or not refs:
        return text
    for mentioned in refs:
        name = names.get(mentioned)
        if name is not None:
            text = text.replace(mentioned, name)
    return text
