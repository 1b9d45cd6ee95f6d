"""``make bench``: switchboard's figures beside a raw baseline measured in the same run.

The instrument only touches switchboard's public surfaces (the processes as
``switchboard run all`` starts them, the HTTP API, the topics and the PostgreSQL schemas),
so it measures whatever runtime the branch it runs on has. ``python -m bench --help``
lists the options; the README's "Benchmarks" section says how to read the table.
"""
