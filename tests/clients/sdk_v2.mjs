// The scenarios of scenarios.mjs with the v2 TypeScript SDK client, @modelcontextprotocol/client
// (pinned in tests/_support/mcp_clients.py): MCP_MODE=legacy is its default handshake era,
// MCP_MODE=modern pins the 2026-07-28 revision.
import {
  Client,
  StreamableHTTPClientTransport,
  UnauthorizedError,
  discoverAuthorizationServerMetadata,
} from '@modelcontextprotocol/client';
import { main } from './scenarios.mjs';

const MODES = { legacy: 'legacy', modern: { pin: '2026-07-28' } };

await main({
  name: 'sdk v2',
  StreamableHTTPClientTransport,
  UnauthorizedError,
  discoverAuthorizationServerMetadata,
  makeClient(mode) {
    return new Client(
      { name: 'coding-agent-tests-sdk-v2', version: '1.0.0' },
      { versionNegotiation: { mode: MODES[mode] } },
    );
  },
  callToolWith(client, params, options) {
    return client.callTool(params, options);
  },
  protocolVersion(client) {
    return client.getNegotiatedProtocolVersion() ?? null;
  },
});
