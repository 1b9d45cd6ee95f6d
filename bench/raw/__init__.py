"""The raw pipeline: the yardstick for switchboard's ongoing-conversation path.

The same shape as switchboard's path, written plainly with aiokafka, psycopg and uvicorn:
one HTTP reception, two Kafka hops and three PostgreSQL commits per message:

    webhook (HMAC check) --produce--> raw.inbound
    append:  consume a batch; its events + positions in ONE transaction; NOTIFY
    relay:   wake on LISTEN; publish the new events (idempotent, acks=all); record how far
    history: consume a batch; its history rows + positions in ONE transaction

Each step is its own OS process, as switchboard's are. Nothing is handicapped: batches per
poll, positions in PostgreSQL (seek on assignment), no Kafka commits needed, no polling.
It decides nothing, so it is the floor a runtime can approach, not a switchboard.
"""
