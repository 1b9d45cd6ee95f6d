"""The inbound consumer: webhook records become Conversation events in its own store."""
