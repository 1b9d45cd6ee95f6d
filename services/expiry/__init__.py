"""The expiry service: one deadline per open conversation, and the timer that fires it."""
