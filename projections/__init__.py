"""Read models built from the event topics: conversation histories and the directory.

Each projection is a pure fold (``apply``) plus a writer that commits the rows together
with the Kafka position they reflect; every read model can be rebuilt from offset zero.
"""
