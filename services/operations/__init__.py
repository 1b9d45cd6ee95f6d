"""Operations tools: what the ``switchboard replay`` and ``switchboard dead-letters`` commands
read and decide. Pure rules here are unit-tested; the readers only fetch rows and records."""
