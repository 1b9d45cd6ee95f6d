"""The service metrics projection: per group, agent and day (see fold.py)."""
