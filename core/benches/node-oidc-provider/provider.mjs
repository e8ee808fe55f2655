// A minimal node-oidc-provider 9 deployment for the side-by-side load benchmark
// (core/benches/load.rs --against-node-oidc-provider), configured like the Portcullis it is
// compared with: one confidential client with client_credentials and client_secret_basic,
// ES256 JWT access tokens (RFC 9068), introspection, the default in-memory adapter.
//
//   node provider.mjs --port 8081
//
// Environment: PORT (when --port is absent), OIDC_BENCH_CLIENT_ID, OIDC_BENCH_CLIENT_SECRET.
// Prints one line `listening <issuer> oidc-provider <version> node <version>` on stdout once
// it accepts connections.

import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { createRequire } from 'node:module';

import Provider, { errors } from 'oidc-provider';

const argPort = process.argv.indexOf('--port');
const port = Number(argPort !== -1 ? process.argv[argPort + 1] : process.env.PORT);
if (!Number.isInteger(port) || port <= 0 || port > 65535) {
  console.error('provider.mjs: give a port with --port N or PORT=N');
  process.exit(2);
}
const clientId = process.env.OIDC_BENCH_CLIENT_ID || 'bench';
const clientSecret = process.env.OIDC_BENCH_CLIENT_SECRET;
if (!clientSecret) {
  console.error('provider.mjs: set OIDC_BENCH_CLIENT_SECRET');
  process.exit(2);
}

// The API the client credentials are for. Both resources grant the same scopes; they differ in
// the access token format only. The
// JWT one is the default when a token request names no resource. node-oidc-provider does not
// introspect JWT access tokens (they are self-contained: not stored, refused by its
// introspection endpoint), so the opaque one exists for the introspection scenario.
const API = 'urn:bench:api';
const API_OPAQUE = 'urn:bench:api:opaque';
const resources = {
  [API]: {
    scope: 'api.read api.write',
    accessTokenFormat: 'jwt',
    jwt: { sign: { alg: 'ES256' } },
  },
  [API_OPAQUE]: {
    scope: 'api.read api.write',
    accessTokenFormat: 'opaque',
  },
};

// One P-256 signing key, made at start like Portcullis makes its first key.
const signingKey = {
  ...generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'jwk' }),
  kid: randomBytes(8).toString('base64url'),
  alg: 'ES256',
  use: 'sig',
};

const issuer = `http://127.0.0.1:${port}`;
const provider = new Provider(issuer, {
  clients: [
    {
      client_id: clientId,
      client_secret: clientSecret,
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      token_endpoint_auth_method: 'client_secret_basic',
    },
  ],
  clientAuthMethods: ['client_secret_basic'],
  clientDefaults: {
    grant_types: ['client_credentials'],
    response_types: [],
    id_token_signed_response_alg: 'ES256',
  },
  jwks: { keys: [signingKey] },
  // Portcullis' default access token lifetime.
  ttl: { ClientCredentials: 600 },
  cookies: { keys: [randomBytes(32).toString('base64url')] },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    introspection: {
      enabled: true,
      // As in Portcullis: a client learns about its own tokens only.
      allowedPolicy: async (ctx, client, token) => token.clientId === client.clientId,
    },
    resourceIndicators: {
      enabled: true,
      defaultResource: async () => API,
      getResourceServerInfo: async (ctx, resource, client) => {
        const info = resources[resource];
        if (!info || client.clientId !== clientId) {
          throw new errors.InvalidTarget();
        }
        return info;
      },
    },
  },
});

provider.on('server_error', (ctx, err) => console.error('server_error', err));

const server = createServer(provider.callback());
// Longer than the load generator's pause between scenarios, so a pooled keep-alive
// connection is not closed under it between two scenarios.
server.keepAliveTimeout = 120_000;
server.headersTimeout = 125_000;
server.listen(port, '127.0.0.1', () => {
  const pkg = createRequire(import.meta.url).resolve('oidc-provider/package.json');
  const { version } = JSON.parse(readFileSync(pkg, 'utf8'));
  console.log(`listening ${issuer} oidc-provider ${version} node ${process.version}`);
});

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => server.close(() => process.exit(0)));
}
