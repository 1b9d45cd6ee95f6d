"""The fault suite runs the processes as the e2e tests do: the same fixtures."""

from tests.e2e.conftest import e2e_env, flow_env, graph, http, processes

__all__ = ["e2e_env", "flow_env", "graph", "http", "processes"]
