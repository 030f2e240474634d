// The one configuration of the peer (oidc-provider), shared by the server
// (server.mjs) and the seeding script (seed.mjs). Settings come from the
// environment (see bench/peer.py): PEER_PORT, PEER_CLIENTS, PEER_JWKS, PEER_REDIS,
// PEER_DATABASE.
import { readFileSync } from "node:fs";

import Redis from "ioredis";
import Provider from "oidc-provider";
import pg from "pg";

import { redisAdapter } from "./redis_adapter.mjs";

export const PORT = Number(process.env.PEER_PORT || 8200);
export const REDIS = process.env.PEER_REDIS || "redis://127.0.0.1:6379/13";
export const DATABASE =
  process.env.PEER_DATABASE || "postgresql://postgres@127.0.0.1:5432/idp_bench";
export const CALLBACK = "http://127.0.0.1:9/callback";
// Session cookies are signed with the first key (keygrip, HMAC-SHA1).
export const COOKIE_KEYS = ["bench-peer-cookie-key"];

const DAY = 24 * 60 * 60;
export const TTL = {
  AccessToken: 3600,
  AuthorizationCode: 60,
  ClientCredentials: 300,
  Grant: 14 * DAY,
  IdToken: 3600,
  Interaction: 3600,
  RefreshToken: 14 * DAY,
  Session: 14 * DAY,
};

// The resource server whose access tokens are JWTs: client_credentials by
// default, and the code flow when the authorization request names it.
export const API = "urn:bench:api";

// The accounts are the IdP's own users, read from its PostgreSQL database as
// it reads them for UserInfo: one indexed query (users.subject is unique) per
// findAccount call, nothing cached; claims() answers from the row loaded.
// An unknown or deactivated subject has no account, so the provider refuses.
const ACCOUNT =
  "SELECT subject, name, email, email_verified FROM users WHERE subject = $1 AND is_active";

function accountFinder(pool) {
  return async (ctx, id) => {
    const { rows } = await pool.query(ACCOUNT, [id]);
    if (rows.length === 0) return undefined;
    const [user] = rows;
    return {
      accountId: user.subject,
      claims: () => ({
        sub: user.subject,
        name: user.name,
        email: user.email,
        email_verified: user.email_verified,
      }),
    };
  };
}

// A provider on the shared Redis store and the users' database, with its
// Redis client and its pg pool (to flush, quit or end). One per process, so
// one pool (at most 10 connections) per worker.
export function createProvider() {
  const clients = JSON.parse(readFileSync(process.env.PEER_CLIENTS, "utf8"));
  const algs = Object.fromEntries(clients.map((c) => [c.client_id, c.alg]));
  const redis = new Redis(REDIS);
  const pool = new pg.Pool({ connectionString: DATABASE, max: 10 });
  // An idle connection that breaks (PostgreSQL restarted) is dropped by the
  // pool; without a listener its "error" event would kill the worker.
  pool.on("error", (error) => console.error(`peer: idle PostgreSQL connection: ${error.message}`));
  const findAccount = accountFinder(pool);
  const provider = new Provider(`http://127.0.0.1:${PORT}`, {
    adapter: redisAdapter(redis),
    clients: clients.map((c) => ({
      client_id: c.client_id,
      client_secret: c.client_secret,
      grant_types: ["authorization_code", "refresh_token", "client_credentials"],
      response_types: ["code"],
      redirect_uris: [CALLBACK],
      token_endpoint_auth_method: "client_secret_basic",
      id_token_signed_response_alg: c.alg,
    })),
    jwks: JSON.parse(readFileSync(process.env.PEER_JWKS, "utf8")),
    cookies: { keys: COOKIE_KEYS },
    findAccount,
    claims: { openid: ["sub"], profile: ["name"], email: ["email", "email_verified"] },
    scopes: ["openid", "profile", "email", "offline_access", "api"],
    rotateRefreshToken: true,
    ttl: TTL,
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      introspection: { enabled: true },
      resourceIndicators: {
        enabled: true,
        // Only client_credentials defaults to the API; other user tokens stay
        // opaque, for userinfo.
        defaultResource: (ctx) =>
          ctx.oidc.params.grant_type === "client_credentials" ? API : undefined,
        useGrantedResource: () => true,
        getResourceServerInfo: (ctx, resource, client) => ({
          scope: "api",
          audience: client.clientId,
          accessTokenTTL: 300,
          accessTokenFormat: "jwt",
          jwt: { sign: { alg: algs[client.clientId] } },
        }),
      },
    },
  });
  return { provider, redis, pool, findAccount };
}
