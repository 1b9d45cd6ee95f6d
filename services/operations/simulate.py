"""``switchboard simulate``: a group's period replayed through another rotation, side by side
with what really happened.

Thin: checks what was asked (one line and exit status 2 for anything wrong), reads the
stores with the replay's reader (``services.operations.stores``), hands the events to the
pure simulation (``services.operations.simulation``) and its measure
(``services.operations.routing_outcome``), and prints both.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TextIO, get_args
from uuid import UUID

import orjson
import psycopg

from events.assignment import ConversationAssigned
from events.catalogue import build_registry
from events.flows import HandOffRequested, Rotation
from services.operations.routing_outcome import (
    AgentLoad,
    ConversationOutcome,
    Outcome,
    departures,
    outcome,
)
from services.operations.simulation import Simulated, SimulationRefused, WhatIf, simulate
from services.operations.stores import events_mentioning
from services.settings import Settings

EXIT_FAILED = 1
EXIT_USAGE = 2
# The stores the simulation reads: members, groups and statuses; hand-offs; closes; and the
# assignment service's decisions (claims and transfers are rebuilt from them).
SIMULATION_STORES = ("directory", "flows", "inbound", "assignment")
ROTATION_NAMES: tuple[str, ...] = get_args(Rotation)


class BadRequest(ValueError):
    """What is wrong with the command line, in one sentence."""


@dataclass(frozen=True)
class Asked:
    """The command line as given (every value a string, or None when left out)."""

    start: str | None
    end: str | None
    group: str | None
    rotation: str | None
    member: str | None = None
    capacity: str | None = None


def what_if(asked: Asked) -> WhatIf:
    """The simulation asked for, or :class:`BadRequest` saying what is wrong."""
    missing = [
        f"--{name}"
        for name, value in (
            ("from", asked.start),
            ("to", asked.end),
            ("group", asked.group),
            ("rotation", asked.rotation),
        )
        if value is None
    ]
    if missing:
        raise BadRequest(f"missing {', '.join(missing)}")
    start = _instant("--from", asked.start or "")
    end = _instant("--to", asked.end or "")
    if end <= start:
        raise BadRequest(f"--to ({asked.end}) must be after --from ({asked.start})")
    group = _uuid("--group", asked.group or "", "a group id")
    if asked.rotation not in ROTATION_NAMES:
        known = ", ".join(ROTATION_NAMES)
        raise BadRequest(f"unknown rotation {asked.rotation!r} (one of {known})")
    rotation: Rotation = asked.rotation  # type: ignore[assignment]  # checked just above
    member = _uuid("--member", asked.member, "a member id") if asked.member else None
    if rotation == "specific" and member is None:
        raise BadRequest("--rotation specific needs --member MEMBER_ID")
    if member is not None and rotation != "specific":
        raise BadRequest("--member only goes with --rotation specific")
    capacity = None
    if asked.capacity is not None:
        if not asked.capacity.isdigit() or int(asked.capacity) < 1:
            raise BadRequest(
                f"--capacity must be a whole number of at least 1, not {asked.capacity!r}"
            )
        capacity = int(asked.capacity)
    return WhatIf(group, start, end, rotation, member, capacity)


def _instant(option: str, text: str) -> datetime:
    """ISO 8601; without an offset, UTC."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise BadRequest(
            f"{option} {text!r} is not an ISO 8601 time (2026-11-29T14:00:00Z)"
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _uuid(option: str, text: str, what: str) -> UUID:
    try:
        return UUID(text)
    except ValueError:
        raise BadRequest(f"{option} {text!r} is not {what} (a UUID)") from None


def run(
    settings: Settings,
    asked: Asked,
    *,
    as_json: bool,
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
) -> int:
    """Print the comparison; 2 for a request that cannot be simulated, 1 when the stores
    cannot be read."""
    try:
        what = what_if(asked)
    except BadRequest as problem:
        print(f"switchboard: {problem}", file=err)
        return EXIT_USAGE
    registry = build_registry()
    try:
        # The group's creation names its workspace; every event of the workspace names it.
        group_found = events_mentioning(settings, ("directory",), what.group_id, registry)
        for undecodable in group_found.undecodable:
            print(f"switchboard: skipped an undecodable event: {undecodable}", file=err)
        created = [e.envelope for e in group_found.entries]
        workspaces = {e.workspace_id for e in created if e.workspace_id is not None}
        entries = []
        for workspace in workspaces:
            found = events_mentioning(settings, SIMULATION_STORES, workspace, registry)
            entries += found.entries
            for undecodable in found.undecodable:
                # As the replay does: named, and left out of the history.
                print(f"switchboard: skipped an undecodable event: {undecodable}", file=err)
    except psycopg.OperationalError as error:
        print(
            f"switchboard: the database cannot be read: {error}".strip().splitlines()[0], file=err
        )
        return EXIT_FAILED
    try:
        simulated = simulate(created + [e.envelope for e in entries], what)
    except SimulationRefused as problem:
        print(f"switchboard: {problem}", file=err)
        return EXIT_USAGE
    real, mine = compare(simulated, what)
    if as_json:
        print(orjson.dumps(report(simulated, what, real, mine)).decode(), file=out)
    else:
        print(text(simulated, what, real, mine), file=out)
    return 0


def compare(simulated: Simulated, what: WhatIf) -> tuple[Outcome, Outcome]:
    """What really happened and what the simulation decided, measured the same way."""
    history = simulated.history
    # Every member given one of the group's conversations, on either side.
    given = {
        timed.decision.member_id
        for timed in (*history.real, *simulated.decisions)
        if isinstance(timed.decision, ConversationAssigned)
    }
    common: dict[str, Any] = {
        "group_id": what.group_id,
        "seed": history.seed,
        "hand_offs": history.hand_offs,
        "closes": history.closes,
        "start": what.start,
        "end": what.end,
        "names": history.members,
        "roster": given | history.roster,
    }
    return (
        outcome(decisions=history.real, **common),
        outcome(decisions=simulated.decisions, **common),
    )


def real_rotations(simulated: Simulated) -> list[str]:
    return sorted(
        {
            t.decision.rotation
            for t in simulated.history.hand_offs
            if isinstance(t.decision, HandOffRequested)
        }
    )


def replays_reality(simulated: Simulated, what: WhatIf) -> bool:
    """Whether the simulation asks for what really was: every hand-off of the period had
    the rotation simulated (``specific``: naming the same member), capacities as they were.
    Then its outcome must be reality's, a check on the model the report shows."""
    requests = [t.decision for t in simulated.history.hand_offs]
    return what.capacity is None and all(
        isinstance(r, HandOffRequested)
        and r.rotation == what.rotation
        and (what.rotation != "specific" or r.member_id == what.member)
        for r in requests
    )


def check(simulated: Simulated, what: WhatIf, real: Outcome, mine: Outcome) -> list[UUID] | None:
    """The conversations where replaying the real rotation departs from reality; None when
    the simulation asks for something else than what was."""
    return departures(real, mine) if replays_reality(simulated, what) else None


def report(simulated: Simulated, what: WhatIf, real: Outcome, mine: Outcome) -> dict[str, Any]:
    """The JSON document: the question, then each side."""
    return {
        "group_id": str(what.group_id),
        "group": simulated.history.group_name,
        "from": what.start.isoformat(),
        "to": what.end.isoformat(),
        "rotation": what.rotation,
        "member_id": str(what.member) if what.member else None,
        "capacity": what.capacity,
        "real_rotations": real_rotations(simulated),
        # With the rotation the hand-offs really had: the conversations the replay decided
        # otherwise than reality (null: another rotation or capacity was simulated).
        "departures_from_reality": (
            None if (off := check(simulated, what, real, mine)) is None else [str(c) for c in off]
        ),
        "real": _side(real),
        "simulated": _side(mine),
    }


def _side(result: Outcome) -> dict[str, Any]:
    return {
        "waiting_seconds": {
            "count": result.waits.count,
            "p50": _seconds(result.waits.p50),
            "p90": _seconds(result.waits.p90),
            "max": _seconds(result.waits.max),
        },
        "agents": [
            {
                "member_id": str(a.member_id),
                "name": a.name,
                "assigned": a.assigned,
                "peak_concurrent": a.peak,
            }
            for a in result.agents
        ],
        "conversations": [
            {
                "conversation_id": str(c.conversation_id),
                "handed_off_at": c.handed_off_at.isoformat(),
                "member_id": str(c.member_id) if c.member_id else None,
                "assigned_at": c.assigned_at.isoformat() if c.assigned_at else None,
                "closed_at": c.closed_at.isoformat() if c.closed_at else None,
                "waited_seconds": _seconds(c.waited),
                "waited_until": c.waited_until,
            }
            for c in result.conversations
        ],
    }


def _seconds(value: timedelta | None) -> float | None:
    return value.total_seconds() if value is not None else None


def text(simulated: Simulated, what: WhatIf, real: Outcome, mine: Outcome) -> str:
    """The comparison as a person reads it: waits, then each agent, then each conversation."""
    history = simulated.history
    names = history.members
    capacity = f", every capacity {what.capacity}" if what.capacity else ""
    specific = f" ({names.get(what.member, str(what.member))})" if what.member else ""
    lines = [
        f"group {history.group_name} ({what.group_id}), {what.start.isoformat()} to"
        f" {what.end.isoformat()}: {len(real.conversations)} conversations handed off",
        f"real rotation: {', '.join(real_rotations(simulated)) or 'none'}; simulated:"
        f" {what.rotation}{specific}{capacity}",
    ]
    off = check(simulated, what, real, mine)
    if off == []:
        lines.append(
            "check: replayed, the real rotation gives each conversation what it really got"
        )
    elif off:
        lines.append(
            f"check: replayed, the real rotation departs from reality for {len(off)} of"
            f" {len(real.conversations)} conversations ({', '.join(str(c) for c in off)}):"
            " the service decided on views newer than the records' event times (see the README)"
        )
    lines += ["", f"{'waiting in queue':<24}{'real':>12}{'simulated':>12}"]
    for label, left, right in (
        ("p50", real.waits.p50, mine.waits.p50),
        ("p90", real.waits.p90, mine.waits.p90),
        ("max", real.waits.max, mine.waits.max),
    ):
        lines.append(f"{label:<24}{_duration(left):>12}{_duration(right):>12}")
    lines += ["", f"{'agent':<24}{'real: given, peak':>20}{'simulated: given, peak':>26}"]
    real_loads = {a.member_id: _load(a) for a in real.agents}
    simulated_loads = {a.member_id: _load(a) for a in mine.agents}
    for member in sorted({*simulated_loads, *real_loads}, key=lambda m: (names.get(m, ""), str(m))):
        was, would = real_loads.get(member, "0, 0"), simulated_loads.get(member, "0, 0")
        lines.append(f"{names.get(member, str(member)):<24}{was:>20}{would:>26}")
    lines += ["", f"{'conversation':<38}  {'real':<32}simulated"]
    simulated_by_id = {c.conversation_id: c for c in mine.conversations}
    for conversation in real.conversations:
        other = simulated_by_id.get(conversation.conversation_id)
        would_be = _fate(other, names) if other is not None else "-"
        was = _fate(conversation, names)
        lines.append(f"{conversation.conversation_id}  {was:<31} {would_be}")
    return "\n".join(lines)


def _duration(value: timedelta | None) -> str:
    """Seconds to the millisecond under a minute (a test's or a quiet queue's waits), then
    hours, minutes and seconds."""
    if value is None:
        return "-"
    seconds = value.total_seconds()
    if seconds < 60:
        return f"{seconds:.3f}s"
    minutes, second = divmod(round(seconds), 60)
    hours, minute = divmod(minutes, 60)
    return f"{hours}h {minute:02d}m {second:02d}s" if hours else f"{minute}m {second:02d}s"


def _load(load: AgentLoad) -> str:
    return f"{load.assigned}, {load.peak}"


def _fate(conversation: ConversationOutcome, names: dict[UUID, str]) -> str:
    if conversation.waited_until == "declined":
        return "declined"
    member = conversation.member_id
    who = names.get(member, str(member)) if member else f"nobody ({conversation.waited_until})"
    return f"{who} after {_duration(conversation.waited)}"
