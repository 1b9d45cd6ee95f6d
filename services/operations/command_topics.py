"""What the gateway publishes and no store holds: agents' replies as queued, claims and
transfers asked for, closes asked for, read markers. Read from their topics (every topic keeps
its history) for ``switchboard replay conversation --commands``."""

from __future__ import annotations

from events.catalogue import (
    CONVERSATION_COMMANDS_TOPIC,
    CONVERSATION_READS_TOPIC,
    HAND_OFF_REQUESTS_TOPIC,
    OUTBOUND_MESSAGES_TOPIC,
    Topic,
)
from events.codec import CodecError, Registry, decode
from services.operations.stores import Found
from services.operations.timeline import StoredEntry
from services.operations.topic_reader import read_topic
from services.settings import Settings

COMMAND_TOPICS: tuple[Topic, ...] = (
    OUTBOUND_MESSAGES_TOPIC,
    HAND_OFF_REQUESTS_TOPIC,
    CONVERSATION_COMMANDS_TOPIC,
    CONVERSATION_READS_TOPIC,
)


async def published_mentioning(settings: Settings, mentioned: str, registry: Registry) -> Found:
    """The records of the command topics whose bytes contain ``mentioned``, decoded; each
    named ``{topic}#{partition}`` with its offset in place of a store and notification id."""
    found = Found()
    needle = mentioned.encode()
    for topic in COMMAND_TOPICS:
        for record in await read_topic(settings, topic):
            if record.value is None or needle not in record.value:
                continue
            where = f"{topic.name}#{record.partition}"
            try:
                envelope = decode(record.value, registry)
            except CodecError as error:
                found.undecodable.append(f"{where}@{record.offset}: {error}")
                continue
            found.entries.append(StoredEntry(where, record.offset, envelope))
    return found
