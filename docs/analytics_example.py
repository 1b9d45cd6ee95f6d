"""An analyst's consumer of switchboard's topics: conversations per day and first response time
per agent, from the JSON on the wire and the published schemas alone.

It needs no switchboard code: only Kafka (aiokafka), the JSON Schemas in ``docs/schemas/``
(``jsonschema``, with ``rfc3339-validator`` so that instants are checked as RFC 3339
date-times) and what ``docs/schemas/README.md`` says. It reads the topics it needs from
the beginning up to their end offsets at start, checks every record against the schema of its
``event_type`` and ``schema_version``, and prints a JSON report::

    python docs/analytics_example.py --bootstrap localhost:9092 [--topic-prefix P]

Definitions (what the figures mean):

- *conversations per day*: ``conversation.started`` records by the UTC date of
  ``started_at`` (when the customer's first message was written);
- *first response time*: for each conversation assigned to a member
  (``assignment.conversation_assigned``), from its first assignment to that member
  (``assigned_at``) to that member's first reply in it (``outbound.message_queued`` with
  ``author`` ``member`` and ``author_id`` the member, at ``queued_at``), in seconds; per
  member: how many conversations were answered, the mean, median and longest. A
  conversation assigned and not (yet) answered counts in ``unanswered``.

A record that does not match its schema, or whose version this program does not understand
(a newer one: read the schema's README), is listed under ``problems`` and makes the exit
status 1; the figures are computed from the records that were understood.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from jsonschema import Draft202012Validator, FormatChecker

SCHEMAS = Path(__file__).resolve().parent / "schemas"
TOPICS = ("conversation.events", "assignment.events", "outbound.messages", "directory.events")
# The versions this analysis was written for: the fields it reads have the same meaning in
# each (docs/schemas/<type>/v<N>.json). A newer version is reported, not guessed at.
UNDERSTOOD = {
    "conversation.started": {1, 2, 3},
    "assignment.conversation_assigned": {1, 2},
    "outbound.message_queued": {1},
    "directory.member_added": {1, 2},
    "directory.member_updated": {1},
}

Record = dict[str, Any]


class Contract:
    """The published schemas, by event type and version (``docs/schemas/index.json``)."""

    def __init__(self, folder: Path) -> None:
        index = json.loads((folder / "index.json").read_text())
        self._validators: dict[tuple[str, int], Draft202012Validator] = {}
        for topic in index["topics"]:
            for event in topic["event_types"]:
                for version in event["versions"]:
                    schema = json.loads((folder / version["schema"]).read_text())
                    self._validators[(event["event_type"], version["version"])] = (
                        Draft202012Validator(schema, format_checker=FormatChecker())
                    )

    def problems(self, record: Any) -> list[str]:
        """Why ``record`` is not a valid record of its type and version ([] if it is)."""
        if not isinstance(record, dict):
            return ["not a JSON object"]
        key = (record.get("event_type"), record.get("schema_version"))
        validator = self._validators.get(key)  # type: ignore[arg-type]
        if validator is None:
            return [f"no published schema for {key[0]!r} version {key[1]!r}"]
        return [
            f"{'/'.join(str(part) for part in error.absolute_path) or '(record)'}: {error.message}"
            for error in validator.iter_errors(record)
        ]


@dataclass
class Analysis:
    """What the records said, folded as they are read (in any order across topics)."""

    started_on: Counter[str] = field(default_factory=Counter)
    # (conversation, member) -> first assignment of that conversation to that member
    assigned: dict[tuple[str, str], datetime] = field(default_factory=dict)
    # (conversation, member) -> that member's replies in that conversation
    replies: defaultdict[tuple[str, str], list[datetime]] = field(
        default_factory=lambda: defaultdict(list)
    )
    names: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    records: int = 0

    def apply(self, record: Record) -> None:
        event_type, version = record["event_type"], record["schema_version"]
        if event_type not in UNDERSTOOD:
            return
        if version not in UNDERSTOOD[event_type]:
            self.problems.append(
                f"{record['event_id']}: {event_type} v{version} is newer than this analysis"
            )
            return
        payload = record["payload"]
        match event_type:
            case "conversation.started":
                self.started_on[_instant(payload["started_at"]).date().isoformat()] += 1
            case "assignment.conversation_assigned":
                key = (payload["conversation_id"], payload["member_id"])
                at = _instant(payload["assigned_at"])
                self.assigned[key] = min(at, self.assigned.get(key, at))
            case "outbound.message_queued" if payload["author"] == "member":
                key = (payload["conversation_id"], payload["author_id"])
                self.replies[key].append(_instant(payload["queued_at"]))
            case "directory.member_added" | "directory.member_updated":
                self.names[payload["member_id"]] = payload["name"]

    def report(self) -> dict[str, Any]:
        waits: defaultdict[str, list[float]] = defaultdict(list)
        unanswered: Counter[str] = Counter()
        for (conversation, member), assigned_at in self.assigned.items():
            later = [at for at in self.replies.get((conversation, member), []) if at >= assigned_at]
            if later:
                waits[member].append((min(later) - assigned_at).total_seconds())
            else:
                unanswered[member] += 1
        members = sorted(set(waits) | set(unanswered))
        return {
            "records": self.records,
            "conversations_per_day": dict(sorted(self.started_on.items())),
            "first_response_seconds": {
                member: {
                    "name": self.names.get(member),
                    "answered": len(waits[member]),
                    "unanswered": unanswered[member],
                    "mean": statistics.fmean(waits[member]) if waits[member] else None,
                    "median": statistics.median(waits[member]) if waits[member] else None,
                    "max": max(waits[member]) if waits[member] else None,
                }
                for member in members
            },
            "problems": self.problems,
        }


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text)


async def read(bootstrap: str, prefix: str, contract: Contract) -> Analysis:
    """Every record of ``TOPICS`` from offset zero up to the end offsets seen at start."""
    analysis = Analysis()
    partitions = await partitions_of([f"{prefix}{topic}" for topic in TOPICS], bootstrap)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False
    )
    await consumer.start()
    try:
        if not partitions:
            return analysis
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        remaining = {tp for tp in partitions if ends[tp] > 0}
        while remaining:
            batches = await consumer.getmany(*remaining, timeout_ms=1000)
            for tp, messages in batches.items():
                for message in messages:
                    analysis.records += 1
                    where = f"{tp.topic}[{tp.partition}]@{message.offset}"
                    try:
                        record = json.loads(message.value) if message.value is not None else None
                    except ValueError as error:
                        analysis.problems.append(f"{where}: not JSON: {error}")
                        continue
                    problems = contract.problems(record)
                    if problems or not isinstance(record, dict):
                        analysis.problems.append(f"{where}: {'; '.join(problems)}")
                        continue
                    try:
                        analysis.apply(record)
                    except ValueError as error:  # valid by its schema, yet not understood
                        analysis.problems.append(f"{where}: {error}")
                if messages and messages[-1].offset + 1 >= ends[tp]:
                    remaining.discard(tp)
    finally:
        await consumer.stop()
    return analysis


async def partitions_of(topics: list[str], bootstrap: str) -> list[TopicPartition]:
    """Every partition of ``topics`` (one nobody wrote to yet may not exist: none of it)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        described = await admin.describe_topics(topics)
    finally:
        await admin.close()
    return [
        TopicPartition(topic["topic"], partition["partition"])
        for topic in described
        if topic["error_code"] == 0
        for partition in sorted(topic["partitions"], key=lambda item: item["partition"])
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bootstrap", default="localhost:9092", help="Kafka bootstrap servers")
    parser.add_argument("--topic-prefix", default="", help="the deployment's topic prefix")
    parser.add_argument("--schemas", type=Path, default=SCHEMAS, help="docs/schemas/")
    args = parser.parse_args(argv)
    analysis = asyncio.run(read(args.bootstrap, args.topic_prefix, Contract(args.schemas)))
    report = analysis.report()
    print(json.dumps(report, indent=2))
    for problem in report["problems"]:
        print(f"problem: {problem}", file=sys.stderr)
    return 1 if report["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
