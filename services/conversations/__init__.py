"""Conversations as members work them: who may see and act on which (pure rules)."""
