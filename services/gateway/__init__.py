"""The HTTP gateway: Meta's webhook in, agent and admin API over the read models."""
