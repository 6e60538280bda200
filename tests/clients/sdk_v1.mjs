// The scenarios of scenarios.mjs with the v1 TypeScript SDK, @modelcontextprotocol/sdk (pinned
// in tests/_support/mcp_clients.py). It speaks the legacy (handshake) era only.
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import {
  UnauthorizedError,
  discoverAuthorizationServerMetadata,
} from '@modelcontextprotocol/sdk/client/auth.js';
import { main } from './scenarios.mjs';

await main({
  name: 'sdk v1',
  StreamableHTTPClientTransport,
  UnauthorizedError,
  discoverAuthorizationServerMetadata,
  makeClient(mode) {
    if (mode !== 'legacy') throw new Error(`the v1 SDK has no ${mode} mode`);
    return new Client({ name: 'coding-agent-tests-sdk-v1', version: '1.0.0' });
  },
  callToolWith(client, params, options) {
    return client.callTool(params, undefined, options);
  },
  protocolVersion(client, transport) {
    return transport.protocolVersion ?? null;
  },
});
