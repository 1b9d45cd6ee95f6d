"""The consumer runtime every switchboard process stands on.

``services/`` and ``projections/`` say *what* a process does (which streams, which decider,
which view rows); this package does the rest, once: Kafka records in batches with their
positions in PostgreSQL, one transaction per batch (record by record when a batch fails),
dedup by event id, retries and dead letters, waiting out outages, the relay that publishes
each store's events, and the declarations the process registry is made of. Nothing here
imports ``services`` or ``projections``.
"""
