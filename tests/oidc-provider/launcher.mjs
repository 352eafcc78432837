// Test-only launcher for panva's oidc-provider (a real, certified OAuth 2.0 /
// OpenID Connect server), spawned by the vault-oauth integration tests.
//
//   node tests/oidc-provider/launcher.mjs [--rotation on|off]
//        [--access-token-ttl SECONDS] [--refresh-token-ttl SECONDS]
//        [--device-interval SECONDS] [--offline-access lenient|strict]
//
// Contract with the parent process:
// - listens on 127.0.0.1, on a free port;
// - when ready, prints exactly one line of JSON to stdout (issuer, endpoints,
//   port) and never anything else there: all logs and warnings go to stderr;
// - exits when its stdin reaches EOF (so it dies with the parent test; spawn it
//   with a piped stdin, not a null one) and on SIGTERM/SIGINT;
// - stderr gets a few lines (provider warnings, at most ~200 grant errors):
//   inherit it, or drain it if piped.
//
// Besides the provider it serves test-only routes under /test/ (mint refresh
// tokens without a browser, counters, revoke a grant). State is in memory only.
//
// Policy worth knowing when writing a client against it: every authorization
// request must use PKCE with S256, confidential clients included (see `pkce`
// below); the dev login/consent pages (devInteractions) and the device flow
// are on; the device authorization response carries no `interval` (RFC 8628
// clients then wait 5 s between polls) and polling too fast never gets
// `slow_down`, only `authorization_pending`.

import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import { parseArgs } from 'node:util';

// oidc-provider prints its "you SHOULD change ..." notices with console.info,
// i.e. to stdout. stdout belongs to the readiness line, so send every console
// method to stderr before the provider is even loaded (hence the dynamic import).
for (const name of ['log', 'info', 'debug']) {
  console[name] = (...args) => console.error(...args);
}
const { default: Provider } = await import('oidc-provider');
// Deep import is fine: the version is pinned exactly and the package has no
// "exports" map. A store with a large bound replaces the default in-memory
// adapter's 1000-entry LRU, which would silently evict minted tokens and grants.
const { default: MemoryAdapter } = await import('oidc-provider/lib/adapters/memory_adapter.js');
const { default: LRU } = await import('oidc-provider/lib/helpers/lru.js');

// ---------------------------------------------------------------- arguments
const { values: opts } = parseArgs({
  options: {
    rotation: { type: 'string', default: 'on' },
    'access-token-ttl': { type: 'string', default: '60' },
    'refresh-token-ttl': { type: 'string', default: String(14 * 24 * 3600) },
    // oidc-provider sends no `interval` in device authorization responses,
    // so clients wait RFC 8628's default 5 s; tests ask for less.
    'device-interval': { type: 'string' },
    // lenient (default): prompt=consent is added to a GET authorization
    // request that asks for offline_access without a prompt (see below).
    // strict: nothing is added, as at a spec-strict OpenID Provider.
    'offline-access': { type: 'string', default: 'lenient' },
  },
});
const positive = (name) => {
  const n = Number(opts[name]);
  if (!Number.isInteger(n) || n <= 0) throw new Error(`--${name} must be a positive integer`);
  return n;
};
if (!['on', 'off'].includes(opts.rotation)) throw new Error('--rotation must be on or off');
const rotation = opts.rotation === 'on';
if (!['lenient', 'strict'].includes(opts['offline-access'])) throw new Error('--offline-access must be lenient or strict');
const strictOfflineAccess = opts['offline-access'] === 'strict';
const accessTtl = positive('access-token-ttl');
const refreshTtl = positive('refresh-token-ttl');
const deviceInterval = opts['device-interval'] === undefined ? undefined : positive('device-interval');

// ---------------------------------------------------------------- counters
const stats = {
  token_requests: 0, refreshes_ok: 0, refresh_errors: 0, replays_detected: 0, grants_revoked: 0,
};

// ---------------------------------------------------------------- clients
const common = {
  application_type: 'native',
  grant_types: ['authorization_code', 'refresh_token', 'urn:ietf:params:oauth:grant-type:device_code'],
  response_types: ['code'],
  // Native loopback redirects: any port is accepted (RFC 8252 section 7.3).
  redirect_uris: ['http://127.0.0.1/', 'http://localhost/'],
  scope: 'openid offline_access email profile',
};
const clients = [
  { ...common, client_id: 'basic-client', client_secret: 'basic-client-secret-0123456789abcdef', token_endpoint_auth_method: 'client_secret_basic' },
  { ...common, client_id: 'post-client', client_secret: 'post-client-secret-0123456789abcdef', token_endpoint_auth_method: 'client_secret_post' },
  { ...common, client_id: 'public-client', token_endpoint_auth_method: 'none' },
];

// ---------------------------------------------------------------- server
// Listen first (port 0) so the issuer can carry the real port.
let providerCallback;
const server = createServer((req, res) => {
  const { pathname } = new URL(req.url, 'http://127.0.0.1');
  if (pathname.startsWith('/test/')) {
    testRoute(req, res, pathname).catch((err) => {
      const bad = err instanceof SyntaxError; // unparsable JSON body
      if (!bad) console.error('launcher: test route failed:', err);
      sendJson(res, bad ? 400 : 500, { error: bad ? 'invalid_request' : 'server_error', error_description: String(err?.message ?? err) });
    });
    return;
  }
  if (req.method === 'POST' && pathname === tokenPath) stats.token_requests += 1;
  providerCallback(req, res);
});
await new Promise((resolve) => { server.listen(0, '127.0.0.1', resolve); });
const { port } = server.address();
const issuer = `http://127.0.0.1:${port}`;

// An ephemeral signing key for ID tokens (the built-in dev key only warns).
const jwk = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' });
const store = new LRU({ maxSize: 1_000_000 });

const provider = new Provider(issuer, {
  adapter: (model) => new MemoryAdapter(model, store),
  clients,
  jwks: { keys: [{ ...jwk, kid: 'test-key', use: 'sig', alg: 'RS256' }] },
  cookies: { keys: [randomBytes(32).toString('hex')] },
  scopes: ['openid', 'offline_access', 'email', 'profile'],
  claims: { openid: ['sub'], email: ['email'], profile: [] },
  // Any account id exists.
  async findAccount(ctx, id) {
    return { accountId: id, async claims() { return { sub: id, email: `${id}@example.test` }; } };
  },
  features: {
    devInteractions: { enabled: true },
    deviceFlow: { enabled: true },
    revocation: { enabled: true },
    introspection: { enabled: true },
  },
  // A refresh token whenever the client may use one and offline_access was
  // granted (this is also the provider's default; spelled out for the reader).
  async issueRefreshToken(ctx, client, code) {
    return client.grantTypeAllowed('refresh_token') && code.scopes.has('offline_access');
  },
  // Without this the default rotates only public clients, or after 70 % of the TTL.
  rotateRefreshToken: () => rotation,
  // PKCE on every authorization request, confidential clients included (the
  // default requires it only of public clients). S256 is the only method the
  // provider accepts. A request without code_challenge is answered, once its
  // redirect_uri has been checked, with a redirect carrying
  // error=invalid_request (lib/actions/authorization/sender_constraints.js).
  pkce: { required: () => true },
  ttl: {
    AccessToken: accessTtl,
    RefreshToken: refreshTtl,
    // The grant must outlive its refresh tokens, or refreshes fail with "grant not found".
    Grant: Math.max(refreshTtl, 14 * 24 * 3600),
    AuthorizationCode: 600,
    DeviceCode: 600,
    IdToken: 3600,
    Interaction: 3600,
    Session: 14 * 24 * 3600,
  },
});
const tokenPath = provider.pathFor('token');
const authorizationPath = provider.pathFor('authorization');

// offline_access without prompt=consent. oidc-provider follows OIDC Core
// section 11 literally: at the authorization endpoint it strips offline_access
// from the scope unless the request has prompt=consent (lib/actions/
// authorization/scopes.js), so issueRefreshToken alone cannot help: the code's
// scope no longer has offline_access. By default (--offline-access lenient)
// a GET authorization request asking for offline_access with no prompt gets
// prompt=consent added, for test clients that send none (as Google's clients
// need not: there access_type=offline suffices). tokvault's own generic login
// sends prompt=consent with offline_access; only strict mode shows that.
// The device flow has no prompt parameter and keeps offline_access anyway.
// --offline-access strict leaves the request alone, so a client that sends no
// prompt=consent gets no refresh token, as from any spec-strict OpenID
// Provider (the tests of `login --prompt` use it).
provider.use(async (ctx, next) => {
  if (!strictOfflineAccess && ctx.method === 'GET' && ctx.path === authorizationPath) {
    const query = new URLSearchParams(ctx.querystring);
    if (!query.has('prompt') && (query.get('scope') ?? '').split(' ').includes('offline_access')) {
      query.set('prompt', 'consent');
      ctx.querystring = query.toString();
    }
  }
  await next();
});
if (deviceInterval !== undefined) {
  const deviceAuthorizationPath = provider.pathFor('device_authorization');
  provider.use(async (ctx, next) => {
    await next();
    if (ctx.method === 'POST' && ctx.path === deviceAuthorizationPath && ctx.status === 200 && ctx.body?.device_code) {
      ctx.body = { ...ctx.body, interval: deviceInterval };
    }
  });
}
providerCallback = provider.callback();

// ---------------------------------------------------------------- events
const isRefresh = (ctx) => ctx?.oidc?.params?.grant_type === 'refresh_token';
provider.on('grant.success', (ctx) => { if (isRefresh(ctx)) stats.refreshes_ok += 1; });
let errorLines = 0;
provider.on('grant.error', (ctx, err) => {
  // Responses carry only a generic description; the detail helps debug tests.
  // Capped, so that a parent that pipes stderr but never reads it cannot fill
  // the pipe (64 KiB) and block us.
  errorLines += 1;
  if (errorLines <= 200) {
    console.error(`launcher: grant.error ${err?.error}: ${err?.error_detail ?? err?.error_description}`);
  } else if (errorLines === 201) {
    console.error('launcher: further grant.error lines suppressed');
  }
  if (!isRefresh(ctx)) return;
  stats.refresh_errors += 1;
  // Replay detection. In 9.x lib/actions/grants/refresh_token.js finds the
  // token, checks client, expiry, grant and account, stores it as
  // ctx.oidc.entities.RefreshToken, and only then, if `refreshToken.consumed`
  // is set, destroys it, revokes the whole grant and throws
  // InvalidGrant('refresh token already used'). The response only says
  // "grant request is invalid", so we look at the error in the provider's own
  // grant.error event: the detail string, or (should the wording change) a
  // consumed RefreshToken entity, which no other invalid_grant path leaves
  // behind (after a successful rotation the entity is the new, unconsumed
  // token). A koa middleware peeking at `consumed` before the grant runs would
  // also count presentations the provider rejects for other reasons (wrong
  // client, expired) without revoking anything, so the event is more exact.
  if (
    err?.error_detail === 'refresh token already used'
    || (err?.error === 'invalid_grant' && ctx.oidc.entities?.RefreshToken?.consumed)
  ) {
    stats.replays_detected += 1;
  }
});
provider.on('grant.revoked', () => { stats.grants_revoked += 1; });
provider.on('server_error', (ctx, err) => console.error('launcher: provider server_error:', err));

// ---------------------------------------------------------------- /test/ routes
async function testRoute(req, res, pathname) {
  if (req.method === 'GET' && pathname === '/test/stats') {
    return sendJson(res, 200, stats);
  }
  if (req.method === 'POST' && pathname === '/test/mint') {
    const body = await readJson(req);
    const client = await provider.Client.find(String(body.client_id ?? ''));
    if (!client) return sendJson(res, 400, { error: 'invalid_request', error_description: 'unknown client_id' });
    const accountId = String(body.account_id ?? 'user-1');
    const scope = String(body.scope ?? 'openid offline_access');
    const count = body.count ?? 1;
    if (!Number.isInteger(count) || count < 1 || count > 5000) {
      return sendJson(res, 400, { error: 'invalid_request', error_description: 'count must be 1..5000' });
    }
    const out = { refresh_tokens: [], grant_ids: [] };
    for (let i = 0; i < count; i += 1) {
      // What a completed authorization leaves behind: a Grant holding the
      // consented scope, then a refresh token bound to it. Not tied to any
      // session (expiresWithSession: false), so it works with no login.
      const grant = new provider.Grant({ accountId, clientId: client.clientId });
      grant.addOIDCScope(scope);
      const grantId = await grant.save();
      const rt = new provider.RefreshToken({
        accountId, client, grantId, scope, gty: 'authorization_code', expiresWithSession: false, rotations: 0,
      });
      out.refresh_tokens.push(await rt.save());
      out.grant_ids.push(grantId);
    }
    return sendJson(res, 200, out);
  }
  if (req.method === 'POST' && pathname === '/test/revoke-grant') {
    const { grant_id: grantId } = await readJson(req);
    if (typeof grantId !== 'string') return sendJson(res, 400, { error: 'invalid_request', error_description: 'grant_id required' });
    // Same steps as the provider's lib/helpers/revoke.js (used on replay and by
    // the revocation endpoint): drop every token of the grant, then the grant.
    await Promise.all([
      provider.AccessToken, provider.RefreshToken, provider.AuthorizationCode, provider.DeviceCode,
    ].map((model) => model.revokeByGrantId(grantId)));
    await provider.Grant.adapter.destroy(grantId);
    provider.emit('grant.revoked', undefined, grantId);
    return sendJson(res, 200, { revoked: grantId });
  }
  return sendJson(res, 404, { error: 'not_found' });
}

async function readJson(req) {
  let text = '';
  for await (const chunk of req) text += chunk;
  return text ? JSON.parse(text) : {};
}

function sendJson(res, status, value) {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(value));
}

// ---------------------------------------------------------------- ready
// Take the endpoint URLs from the provider's own discovery document, which
// also proves it is serving before we announce readiness.
const discovery = await (await fetch(`${issuer}/.well-known/openid-configuration`)).json();

process.stdin.on('end', () => process.exit(0));
process.stdin.on('error', () => process.exit(0));
process.stdin.resume();
process.on('SIGTERM', () => process.exit(0));
process.on('SIGINT', () => process.exit(0));

process.stdout.write(`${JSON.stringify({
  issuer,
  token_endpoint: discovery.token_endpoint,
  revocation_endpoint: discovery.revocation_endpoint,
  authorization_endpoint: discovery.authorization_endpoint,
  device_authorization_endpoint: discovery.device_authorization_endpoint,
  introspection_endpoint: discovery.introspection_endpoint,
  port,
})}\n`);
