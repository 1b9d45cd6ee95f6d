"""One transaction's worth of projecting: the rows it read, the hot writes it has not sent.

The projector folds what one poll returned in one transaction (``ProjectionRecorder.fold``).
Most of an event's work is a handful of statements that only the busiest kinds repeat: the
conversation's row read and written again, a line added to its history, the holder's row
read, a line of the change feed. A :class:`Batch` keeps those in memory for the length of
the transaction and sends them set-based (one ``executemany`` per kind, pipelined by psycopg),
while keeping the fold's order semantics exactly:

* **Reads see earlier writes.** The conversation and assignment rows are read once per batch
  (all of the batch's conversations in one query) and then kept here; every later event of
  the batch folds from the row as the earlier ones left it. Only this module writes those two
  tables, so the kept rows stay true for the whole transaction.
* **Statements that read what is pending settle it first.** A history line edited, a
  delivery status joined to its line, an echo's status: whoever runs SQL that reads
  ``conversations`` or ``conversation_history`` calls :meth:`Batch.settle` before it, which
  sends every pending row in the order it was staged.
* **The change feed comes last.** Its rows are never read while folding, so they are written
  at :meth:`Batch.finish`, in the order of the events, just before the transaction commits;
  the feed's lock (see ``finish``) is held only from there to the commit, and the feed's
  channel is notified once per workspace the batch changed (PostgreSQL delivers it at
  commit, and folds repeats within a transaction anyway).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar
from uuid import UUID

from psycopg import Cursor
from psycopg.rows import DictRow
from psycopg.sql import SQL, Composed, Identifier, Literal
from psycopg.types.json import Jsonb

from events.envelope import Envelope
from projections.assignments import AssignmentRow
from projections.conversations import ConversationRow, HistoryEntry
from projections.queries import change_channel
from projections.readable import readable

ASSIGNMENT_COLUMNS = tuple(AssignmentRow.__dataclass_fields__)
CONVERSATION_COLUMNS = tuple(ConversationRow.__dataclass_fields__)
HISTORY_COLUMNS = tuple(HistoryEntry.__dataclass_fields__)
HISTORY_JSON = frozenset({"content", "errors", "refs", "context", "referral", "previous"})

Row = TypeVar("Row", ConversationRow, AssignmentRow)


@dataclass(frozen=True)
class Change:
    """What an event changed that agents see, and whose screens it concerns."""

    conversation_id: UUID | None
    group_id: UUID | None
    member_id: UUID | None


def as_stored(row: Row) -> Row:
    """``row`` as PostgreSQL would give it back (NUL shown as U+FFFD, ``projections.readable``):
    a later event of the batch compares against what a read would have returned."""
    return type(row)(**{name: readable(value) for name, value in row.__dict__.items()})


def _upsert(schema: Identifier, table: str, columns: Sequence[str]) -> Composed:
    return SQL(
        "INSERT INTO {s}.{t} ({columns}) VALUES ({values})"
        " ON CONFLICT ({key}) DO UPDATE SET {updates}"
    ).format(
        s=schema,
        t=Identifier(table),
        columns=SQL(", ").join(Identifier(c) for c in columns),
        values=SQL(", ").join(SQL("%({})s").format(SQL(c)) for c in columns),
        key=Identifier(columns[0]),
        updates=SQL(", ").join(
            SQL("{c} = EXCLUDED.{c}").format(c=Identifier(c)) for c in columns[1:]
        ),
    )


class Batch:
    """The rows one projector transaction has read or written, and its pending writes."""

    def __init__(self, cursor: Cursor[DictRow], schema: str) -> None:
        self.cursor = cursor
        self.schema_name = schema
        self.schema = Identifier(schema)
        self._conversations: dict[UUID, ConversationRow | None] = {}
        self._assignments: dict[UUID, AssignmentRow | None] = {}
        # Pending writes, in the order they were staged (dicts keep insertion order).
        self._conversation_writes: dict[UUID, ConversationRow] = {}
        self._assignment_writes: dict[UUID, AssignmentRow] = {}
        self._history: list[dict[str, Any]] = []
        self._changes: list[tuple[Any, ...]] = []
        self._changed_workspaces: dict[str, None] = {}
        self.statements = 0  # how many statements it sent (for the tests and the bench)

    def _sql(self, statement: str) -> Composed:
        return SQL(statement).format(s=self.schema)

    def _execute(self, statement: Composed, params: Any = None) -> None:
        self.statements += 1
        self.cursor.execute(statement, params)

    def _execute_many(self, statement: Composed, params: Sequence[Any]) -> None:
        if params:
            self.statements += 1
            self.cursor.executemany(statement, params)

    # -- which events are new --------------------------------------------------------------

    def first_time(self, envelopes: Iterable[Envelope]) -> set[UUID]:
        """Record every event id as applied; the ids never applied before (one statement).

        The relay may publish an event twice (after a crash), at another offset: positions
        cannot tell, event ids do."""
        ids = list(dict.fromkeys(envelope.event_id for envelope in envelopes))
        if not ids:
            return set()
        self._execute(
            self._sql(
                "INSERT INTO {s}.applied_events SELECT unnest(%s::uuid[])"
                " ON CONFLICT DO NOTHING RETURNING event_id"
            ),
            (ids,),
        )
        return {row["event_id"] for row in self.cursor.fetchall()}

    # -- conversations and who holds them ------------------------------------------------------

    def load(self, conversation_ids: Iterable[UUID]) -> None:
        """Read the conversation and assignment rows of ``conversation_ids`` not read yet
        (two statements for the whole batch)."""
        wanted = [i for i in dict.fromkeys(conversation_ids) if i not in self._conversations]
        if wanted:
            self._execute(
                self._sql("SELECT * FROM {s}.conversations WHERE conversation_id = ANY(%s)"),
                (wanted,),
            )
            found = {row["conversation_id"]: row for row in self.cursor.fetchall()}
            for conversation_id in wanted:
                row = found.get(conversation_id)
                self._conversations[conversation_id] = (
                    ConversationRow(**{c: row[c] for c in CONVERSATION_COLUMNS}) if row else None
                )
        wanted = [i for i in dict.fromkeys(conversation_ids) if i not in self._assignments]
        if wanted:
            self._execute(
                self._sql(
                    "SELECT * FROM {s}.conversation_assignments WHERE conversation_id = ANY(%s)"
                ),
                (wanted,),
            )
            held = {row["conversation_id"]: row for row in self.cursor.fetchall()}
            for conversation_id in wanted:
                row = held.get(conversation_id)
                self._assignments[conversation_id] = (
                    AssignmentRow(**{c: row[c] for c in ASSIGNMENT_COLUMNS}) if row else None
                )

    def conversation(self, conversation_id: UUID) -> ConversationRow | None:
        if conversation_id not in self._conversations:
            self.load([conversation_id])
        return self._conversations[conversation_id]

    def put_conversation(self, row: ConversationRow) -> None:
        stored = as_stored(row)
        self._conversations[row.conversation_id] = stored
        self._conversation_writes.pop(row.conversation_id, None)
        self._conversation_writes[row.conversation_id] = stored

    def assignment(self, conversation_id: UUID) -> AssignmentRow | None:
        if conversation_id not in self._assignments:
            self.load([conversation_id])
        return self._assignments[conversation_id]

    def put_assignment(self, row: AssignmentRow) -> None:
        stored = as_stored(row)
        self._assignments[row.conversation_id] = stored
        self._assignment_writes.pop(row.conversation_id, None)
        self._assignment_writes[row.conversation_id] = stored

    def holders(self, conversation_id: UUID) -> Change:
        """Whoever holds the conversation now sees it change."""
        held = self.assignment(conversation_id)
        if held is None:
            return Change(conversation_id, None, None)
        return Change(conversation_id, held.group_id, held.assignee_id)

    # -- history lines and the change feed ---------------------------------------------------

    def add_history(self, entry: HistoryEntry) -> None:
        self._history.append(
            {
                column: Jsonb(value) if column in HISTORY_JSON and value is not None else value
                for column, value in entry.__dict__.items()
            }
        )

    def add_change(self, envelope: Envelope, change: Change, cause: UUID | None) -> None:
        assert envelope.workspace_id is not None
        self._changes.append(
            (
                envelope.workspace_id,
                change.conversation_id,
                change.group_id,
                change.member_id,
                envelope.event_type,
                envelope.occurred_at,
                cause,
            )
        )
        self._changed_workspaces[str(envelope.workspace_id)] = None

    # -- sending what is pending -----------------------------------------------------------------

    def settle(self) -> None:
        """Send every pending row (conversations, holders, history lines), so that SQL run
        next reads them. Rows of distinct conversations go in id order, the same in every
        transaction, so two replicas' batches lock them in one order."""
        if self._conversation_writes:
            rows = [self._conversation_writes[key] for key in sorted(self._conversation_writes)]
            self._conversation_writes.clear()
            self._execute_many(
                _upsert(self.schema, "conversations", CONVERSATION_COLUMNS),
                [row.__dict__ for row in rows],
            )
        if self._assignment_writes:
            held = [self._assignment_writes[key] for key in sorted(self._assignment_writes)]
            self._assignment_writes.clear()
            self._execute_many(
                _upsert(self.schema, "conversation_assignments", ASSIGNMENT_COLUMNS),
                [row.__dict__ for row in held],
            )
        if self._history:
            lines, self._history = self._history, []
            # In staging order: a line's event id is unique, so the first insert wins, as it
            # did one event at a time.
            self._execute_many(
                SQL(
                    "INSERT INTO {s}.conversation_history ({columns}) VALUES ({values})"
                    " ON CONFLICT (event_id) DO NOTHING"
                ).format(
                    s=self.schema,
                    columns=SQL(", ").join(Identifier(c) for c in HISTORY_COLUMNS),
                    values=SQL(", ").join(SQL("%({})s").format(SQL(c)) for c in HISTORY_COLUMNS),
                ),
                lines,
            )

    def finish(self) -> None:
        """Send everything pending; the change feed last, then its notifications.

        Readers follow the feed by ``seq``, so rows must become visible in ``seq`` order: a
        transaction-scoped lock taken just before the insert, held until commit, keeps two
        projector transactions (replicas) from committing a later seq before an earlier one.
        ``executemany`` runs the inserts in order, so ``seq`` follows the events' order."""
        self.settle()
        if not self._changes:
            return
        self._execute(
            SQL("SELECT pg_advisory_xact_lock(hashtext({}))").format(
                Literal(f"{self.schema_name}.changes")
            )
        )
        changes, self._changes = self._changes, []
        self._execute_many(
            self._sql(
                "INSERT INTO {s}.changes (workspace_id, conversation_id, group_id, member_id,"
                " kind, occurred_at, caused_by) VALUES (%s, %s, %s, %s, %s, %s, %s)"
            ),
            changes,
        )
        workspaces, self._changed_workspaces = list(self._changed_workspaces), {}
        # Delivered at commit, once per workspace the batch changed: the gateways' streams
        # wake now rather than at their next poll, and read every row of the batch at once.
        self._execute(
            SQL("SELECT pg_notify({}, workspace) FROM unnest(%s::text[]) AS workspace").format(
                Literal(change_channel(self.schema_name))
            ),
            (workspaces,),
        )
