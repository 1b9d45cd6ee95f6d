"""Private notes: what members write in a conversation for each other, never for the customer.

A note is a command to the inbound service (``conversation.add_note`` on
``conversation.commands``, keyed like every command about a contact's thread), which decides
it on the thread that holds the conversation and records ``conversation.note_added``. That
event travels on a topic of its own, ``conversation.notes``, which only the projector reads:
no process that talks to the customer (flows, the dispatcher) ever receives a note, so none
can send one by mistake.
"""

from __future__ import annotations

from events.base import Id, Instant, Payload

# Meta's limit on a text message; a note is shown next to them.
MAX_NOTE_LENGTH = 4096


class AddNote(Payload):
    """Command: ``author_id`` (a member) adds a private note to a conversation."""

    event_type = "conversation.add_note"

    conversation_id: Id
    workspace_id: Id
    phone_number_id: str
    contact_wa_id: str
    note_id: Id
    author_id: Id
    text: str


class NoteAdded(Payload):
    """A private note in the conversation's history, for members only (never sent)."""

    event_type = "conversation.note_added"

    conversation_id: Id
    note_id: Id
    author_id: Id
    text: str
    added_at: Instant


class NoteRefused(Payload):
    """A note the inbound service would not add, and why (a conversation not of the
    thread it was sent to, empty text, a control character): the caller can tell."""

    event_type = "conversation.note_refused"

    conversation_id: Id
    note_id: Id
    author_id: Id
    reason: str


NOTE_COMMANDS: tuple[type[Payload], ...] = (AddNote,)
NOTE_EVENTS: tuple[type[Payload], ...] = (NoteAdded, NoteRefused)
