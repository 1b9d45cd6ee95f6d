"""The assignment service: who takes each handed-off conversation, and why."""
