"""The sans-IO MCP core: JSON-RPC messages, the registry, errors, negotiation and dispatch."""
