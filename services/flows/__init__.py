"""The flows service: published flow definitions, and one flow run per conversation."""
