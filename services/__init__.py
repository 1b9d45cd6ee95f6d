"""The switchboard processes: gateway (HTTP), inbound, directory, relay and their runtime."""
