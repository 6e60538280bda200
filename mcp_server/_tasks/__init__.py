"""Coding tasks: the state machine, durable store, daemon runner and the MCP tools."""
