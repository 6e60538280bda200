// The scenarios one MCP client SDK runs against `coding-agent up`, shared by sdk_v1.mjs and
// sdk_v2.mjs (each passes its SDK's exports in). One JSON object per line on stdout, one per
// step, for tests/clients/test_sdk_clients.py to assert on:
//   {"step": "<name>", ...}   a step done (tool results carry structuredContent and isError)
//   {"step": "paused"}        waiting for one line on stdin (the test restarts the server)
//   {"step": "error", "at": "<step>", "name": "...", "message": "...", "code": ...}  then exit 1
//
// Usage: node sdk_vN.mjs sequence|restart|progress|oauth  with env MCP_URL, MCP_TOKEN (the server's
// bearer token: sent as a header, or in oauth typed into the consent page) and MCP_MODE
// (legacy or modern); progress also takes TASK_INSTRUCTIONS.

import http from 'node:http';
import readline from 'node:readline';

const WAIT_CALLS = 5; // wait_task holds up to 30 s per call: a bound, not a pace

let currentStep = 'start';

function emit(step, data = {}) {
  currentStep = step;
  process.stdout.write(JSON.stringify({ step, ...data }) + '\n');
}

function toolData(result) {
  return { isError: Boolean(result.isError), structured: result.structuredContent ?? null };
}

async function callTool(client, name, args = {}) {
  currentStep = name;
  const result = await client.callTool({ name, arguments: args });
  emit(name, toolData(result));
  return result;
}

async function connect(sdk, mode, options) {
  const client = sdk.makeClient(mode);
  const transport = new sdk.StreamableHTTPClientTransport(new URL(process.env.MCP_URL), options);
  await client.connect(transport);
  return { client, transport };
}

function connectedData(sdk, client, transport) {
  return {
    protocolVersion: sdk.protocolVersion(client, transport),
    sessionId: transport.sessionId ?? null,
    server: client.getServerVersion()?.name ?? null,
  };
}

function bearer() {
  return { requestInit: { headers: { Authorization: `Bearer ${process.env.MCP_TOKEN}` } } };
}

async function createAndWait(client) {
  const created = await callTool(client, 'create_task', {
    title: 'real client',
    instructions: 'hello',
  });
  const id = created.structuredContent.result.task_id;
  for (let call = 0; call < WAIT_CALLS; call += 1) {
    const waited = await callTool(client, 'wait_task', { id, timeout_s: 30 });
    const status = waited.structuredContent?.result?.status;
    if (status !== 'pending' && status !== 'in_progress') break;
  }
  return id;
}

async function readTask(client, id) {
  currentStep = 'read_resource';
  const read = await client.readResource({ uri: `task://${id}` });
  emit('read_resource', { contents: read.contents.map((c) => ({ uri: c.uri, text: c.text })) });
}

async function sequence(sdk, mode) {
  const { client, transport } = await connect(sdk, mode, bearer());
  emit('connected', connectedData(sdk, client, transport));
  currentStep = 'tools';
  const { tools } = await client.listTools();
  emit('tools', { annotations: Object.fromEntries(tools.map((t) => [t.name, t.annotations])) });
  await callTool(client, 'check_status');
  const id = await createAndWait(client);
  await callTool(client, 'report', { id });
  await readTask(client, id);
  await callTool(client, 'end_task', { id });
  await client.close();
}

// wait_task with a progress callback (the SDK then sends a progressToken): each progress
// notification is a step of its own, printed as it comes, so the test can pace the task.
async function progress(sdk, mode) {
  const { client } = await connect(sdk, mode, bearer());
  const created = await callTool(client, 'create_task', {
    title: 'progress',
    instructions: process.env.TASK_INSTRUCTIONS,
  });
  const id = created.structuredContent.result.task_id;
  currentStep = 'wait_task';
  const onprogress = (p) => emit('progress', { progress: p.progress, message: p.message ?? null });
  const waited = await sdk.callToolWith(
    client,
    { name: 'wait_task', arguments: { id, timeout_s: 30 } },
    { onprogress },
  );
  emit('wait_task', toolData(waited));
  await client.close();
}

async function pause() {
  emit('paused');
  const lines = readline.createInterface({ input: process.stdin });
  for await (const line of lines) {
    lines.close();
    return line;
  }
  throw new Error('stdin closed while paused');
}

async function restart(sdk, mode) {
  const { client, transport } = await connect(sdk, mode, bearer());
  emit('connected', connectedData(sdk, client, transport));
  const id = await createAndWait(client);
  await pause();
  // The same client object, after the server restarted on the same port and state.
  await callTool(client, 'report', { id });
  await readTask(client, id);
  await callTool(client, 'end_task', { id });
  emit('after_restart', { sessionId: transport.sessionId ?? null });
  await client.close();
}

// --- OAuth: the SDK's own flow, with a scripted browser on the consent page ---------------

function decodeEntities(text) {
  return text
    .replace(/&quot;/g, '"')
    .replace(/&#0*39;|&#x0*27;|&apos;/gi, "'")
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&amp;/g, '&');
}

function attributes(tag) {
  const found = {};
  for (const match of tag.matchAll(/([A-Za-z_:][-\w:.]*)\s*(?:=\s*("([^"]*)"|'([^']*)'|([^\s>]+)))?/g)) {
    found[match[1].toLowerCase()] = decodeEntities(match[3] ?? match[4] ?? match[5] ?? '');
  }
  return found;
}

// The consent page's form per the contract: one <form method="post" action="/oauth/authorize">,
// hidden inputs carrying the request, a `credential` field, `decision` buttons.
function consentForm(html) {
  const form = html.match(/<form\b[^>]*>([\s\S]*?)<\/form>/i);
  if (form === null) throw new Error(`no <form> on the consent page: ${html.slice(0, 300)}`);
  const formAttributes = attributes(form[0].slice(5, form[0].indexOf('>')));
  const hidden = {};
  const names = [];
  for (const tag of form[1].matchAll(/<(input|button)\b([^>]*)>/gi)) {
    const attrs = attributes(tag[2]);
    if (attrs.name) names.push(attrs.name);
    if (tag[1].toLowerCase() === 'input' && attrs.type === 'hidden' && attrs.name) {
      hidden[attrs.name] = attrs.value ?? '';
    }
  }
  return { method: formAttributes.method, action: formAttributes.action, hidden, names };
}

function callbackListener() {
  let deliver;
  const code = new Promise((resolve) => {
    deliver = resolve;
  });
  const server = http.createServer((request, response) => {
    const url = new URL(request.url, 'http://127.0.0.1');
    response.writeHead(200, { 'Content-Type': 'text/plain' });
    response.end('done\n');
    if (url.pathname === '/callback') deliver(url.searchParams);
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => {
      const port = server.address().port;
      resolve({ server, code, redirectUrl: `http://127.0.0.1:${port}/callback` });
    });
  });
}

class TestProvider {
  constructor(sdkName, redirectUrl) {
    this.sdkName = sdkName;
    this._redirectUrl = redirectUrl;
    this.client = undefined;
    this.saved = undefined;
    this.verifier = undefined;
    this.redirects = [];
    this.savedTokens = 0;
    this.invalidated = [];
    this.consent = null;
  }

  get redirectUrl() {
    return this._redirectUrl;
  }

  get clientMetadata() {
    return {
      client_name: `coding-agent tests (${this.sdkName})`,
      redirect_uris: [this._redirectUrl],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
    };
  }

  state() {
    return 'state-' + Math.random().toString(36).slice(2);
  }

  clientInformation() {
    return this.client;
  }

  saveClientInformation(information) {
    this.client = information;
  }

  tokens() {
    return this.saved;
  }

  saveTokens(tokens) {
    this.saved = tokens;
    this.savedTokens += 1;
  }

  // What the server refused (a revoked grant): forget it, so the SDK starts a new authorization.
  invalidateCredentials(scope) {
    this.invalidated.push(scope);
    if (scope === 'all' || scope === 'tokens') this.saved = undefined;
    if (scope === 'all' || scope === 'client') this.client = undefined;
    if (scope === 'all' || scope === 'verifier') this.verifier = undefined;
  }

  saveCodeVerifier(verifier) {
    this.verifier = verifier;
  }

  codeVerifier() {
    return this.verifier;
  }

  // The user agent: open the consent page, fill it in as the owner, allow, follow the redirect
  // to our loopback listener (which resolves the code promise).
  async redirectToAuthorization(authorizationUrl) {
    this.redirects.push(authorizationUrl);
    if (this.redirects.length > 1) return; // after revocation: no second consent
    const page = await fetch(authorizationUrl, { redirect: 'manual' });
    const html = await page.text();
    const form = consentForm(html);
    const cookies = page.headers.getSetCookie().map((c) => c.split(';')[0]);
    const body = new URLSearchParams({
      ...form.hidden,
      credential: process.env.MCP_TOKEN,
      decision: 'allow',
    });
    const target = new URL(form.action || authorizationUrl.pathname, authorizationUrl);
    const posted = await fetch(target, {
      method: 'POST',
      body,
      redirect: 'manual',
      // What a browser sends with a form POST: its origin, and the cookies the page set.
      headers: { Origin: target.origin, ...(cookies.length ? { Cookie: cookies.join('; ') } : {}) },
    });
    const location = posted.headers.get('location');
    this.consent = {
      pageStatus: page.status,
      formMethod: form.method ?? null,
      formAction: form.action ?? null,
      fields: form.names,
      postStatus: posted.status,
      redirectedTo: location === null ? null : location.split('?')[0],
    };
    if (location === null) {
      throw new Error(`consent POST answered ${posted.status} without a redirect`);
    }
    await fetch(new URL(location, target));
  }
}

async function revoke(sdk, provider, token, hint) {
  const origin = new URL(process.env.MCP_URL).origin;
  const metadata = await sdk.discoverAuthorizationServerMetadata(new URL(origin));
  const response = await fetch(metadata.revocation_endpoint, {
    method: 'POST',
    body: new URLSearchParams({
      token,
      token_type_hint: hint,
      client_id: provider.client.client_id,
    }),
  });
  return response.status;
}

async function rawToolsList(accessToken) {
  const response = await fetch(process.env.MCP_URL, {
    method: 'POST',
    headers: {
      Authorization: `Bearer ${accessToken}`,
      'Content-Type': 'application/json',
      Accept: 'application/json, text/event-stream',
      'MCP-Protocol-Version': '2025-11-25',
    },
    body: JSON.stringify({
      jsonrpc: '2.0',
      id: 1,
      method: 'initialize',
      params: {
        protocolVersion: '2025-11-25',
        capabilities: {},
        clientInfo: { name: 'revocation check', version: '0' },
      },
    }),
  });
  await response.body?.cancel();
  return response.status;
}

async function oauth(sdk, mode) {
  const listener = await callbackListener();
  const provider = new TestProvider(sdk.name, listener.redirectUrl);
  try {
    const first = sdk.makeClient(mode);
    const url = new URL(process.env.MCP_URL);
    const transport = new sdk.StreamableHTTPClientTransport(url, { authProvider: provider });
    currentStep = 'unauthorized';
    try {
      await first.connect(transport);
      throw new Error('connected with no token: the server did not ask for authorization');
    } catch (error) {
      if (!(error instanceof sdk.UnauthorizedError)) throw error;
    }
    const asked = provider.redirects[0];
    emit('unauthorized', {
      registered: provider.client?.client_id !== undefined,
      authorization: asked === undefined ? null : Object.fromEntries(asked.searchParams),
      authorizationEndpoint: asked === undefined ? null : asked.origin + asked.pathname,
      consent: provider.consent,
    });
    const callback = await listener.code;
    currentStep = 'token';
    await transport.finishAuth(callback.get('code'));
    const granted = provider.tokens();
    emit('token', {
      tokenType: granted.token_type,
      expiresIn: granted.expires_in ?? null,
      hasRefresh: Boolean(granted.refresh_token),
      stateEchoed: callback.get('state') === asked.searchParams.get('state'),
    });

    currentStep = 'connected';
    const second = await connect(sdk, mode, { authProvider: provider });
    const client = second.client;
    emit('connected', { protocolVersion: sdk.protocolVersion(client, second.transport) });
    await callTool(client, 'check_status');

    // An access token the server no longer takes (as once it expires): the SDK must refresh.
    const before = provider.tokens();
    provider.saved = { ...before, access_token: `${before.access_token}-expired` };
    const refreshed = await client.callTool({ name: 'check_status', arguments: {} });
    const after = provider.tokens();
    emit('refreshed', {
      ...toolData(refreshed),
      accessChanged: after.access_token !== before.access_token,
      refreshRotated: Boolean(after.refresh_token) && after.refresh_token !== before.refresh_token,
      consents: provider.redirects.length,
    });

    currentStep = 'revoke';
    const revokedAccess = await revoke(sdk, provider, after.access_token, 'access_token');
    const revokedRefresh = await revoke(sdk, provider, after.refresh_token, 'refresh_token');
    emit('revoke', {
      accessStatus: revokedAccess,
      refreshStatus: revokedRefresh,
      oldAccessToken: await rawToolsList(after.access_token),
    });

    currentStep = 'after_revoke';
    try {
      const denied = await client.callTool({ name: 'check_status', arguments: {} });
      emit('after_revoke', { ...toolData(denied), rejected: false });
    } catch (error) {
      emit('after_revoke', {
        rejected: true,
        name: error?.constructor?.name ?? null,
        message: String(error?.message ?? error),
        invalidated: provider.invalidated,
        consents: provider.redirects.length,
      });
    }
    await client.close();
  } finally {
    listener.server.close();
  }
}

const SCENARIOS = { sequence, restart, progress, oauth };

export async function main(sdk) {
  const scenario = SCENARIOS[process.argv[2]];
  const mode = process.env.MCP_MODE ?? 'legacy';
  if (scenario === undefined) {
    emit('error', { at: 'start', message: `unknown scenario ${process.argv[2]}` });
    process.exit(2);
  }
  try {
    await scenario(sdk, mode);
    emit('done');
    process.exit(0);
  } catch (error) {
    process.stdout.write(
      JSON.stringify({
        step: 'error',
        at: currentStep,
        name: error?.constructor?.name ?? null,
        message: String(error?.message ?? error),
        code: error?.code ?? null,
      }) + '\n',
    );
    process.exit(1);
  }
}
