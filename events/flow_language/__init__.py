"""The flow language: what an admin writes and ``directory.flow_published`` carries.

A flow's ``definition`` travels inside the directory's events as JSON; this package is what
that JSON means, shared by everyone who reads or checks one: the gateway (a publish request
answered 400 naming the block), the directory (the same checks on the command, whatever
sent it) and the flows service (a run reads its version through :func:`grammar.parse_flow`).

* :mod:`.grammar`: the blocks, their transitions and what every stored version satisfies;
* :mod:`.publishing`: what a *new* version must satisfy as well (Meta's limits, variables
  captured before use, conditions that can hold);
* :mod:`.text_check`: no control characters in a document's names, ids and texts.
"""
