// Seeds the peer's Redis store (flushed first) through oidc-provider's own
// models, for the benchmark of userinfo, introspection, refresh and authorize:
// a session logged in as PEER_ACCOUNT (the subject of an active user of
// PEER_DATABASE, required) with a grant for bench-rs, an opaque access token,
// and PEER_REFRESH_TOKENS single-use refresh tokens (one grant each, so that
// the reuse of one, which revokes its grant, spares the others). Writes
// {access_token, refresh_tokens_file, cookie} as JSON to PEER_OUT.
import { createHmac } from "node:crypto";
import { writeFileSync } from "node:fs";
import { dirname, join } from "node:path";

import { API, COOKIE_KEYS, DATABASE, TTL, createProvider } from "./config.mjs";

const CLIENT_ID = "bench-rs";
const SCOPE = "openid profile email offline_access";
const ACCOUNT_ID = process.env.PEER_ACCOUNT;
const count = Number(process.env.PEER_REFRESH_TOKENS || 0);
const out = process.env.PEER_OUT;

if (!ACCOUNT_ID) {
  console.error("seed.mjs: PEER_ACCOUNT must name the subject of a user of PEER_DATABASE");
  process.exit(2);
}

const { provider, redis, pool, findAccount } = createProvider();
// The same lookup as the server's: a subject it would refuse is no use seeded.
if (!(await findAccount(undefined, ACCOUNT_ID))) {
  console.error(`seed.mjs: no active user with subject ${ACCOUNT_ID} in ${DATABASE}`);
  await Promise.all([pool.end(), redis.quit()]);
  process.exit(2);
}
await pool.end();
await redis.flushdb();
const client = await provider.Client.find(CLIENT_ID);

async function newGrant() {
  const grant = new provider.Grant({ accountId: ACCOUNT_ID, clientId: CLIENT_ID });
  // The API too ("api" is among the provider's scopes, and the API's), so a
  // code flow naming it (resource=, scope api) is not prompted for consent
  // and gets a JWT access token, like ours.
  grant.addOIDCScope(`${SCOPE} api`);
  grant.addResourceScope(API, "api");
  await grant.save();
  return grant.jti;
}

// The SSO session: logged in, with the grant the authorize request finds
// through session.grantIdFor(client), so neither login nor consent is prompted.
const session = new provider.Session();
session.loginAccount({ accountId: ACCOUNT_ID, amr: ["pwd"] });
session.grantIdFor(CLIENT_ID, await newGrant());
session.ensureClientContainer(CLIENT_ID);
await session.save(TTL.Session);

// The cookie as koa's `cookies` signs it: "<name>.sig" holds the HMAC-SHA1
// (base64url) of "<name>=<value>" with the first key.
const name = provider.cookieName("session");
const signature = createHmac("sha1", COOKIE_KEYS[0])
  .update(`${name}=${session.id}`)
  .digest("base64url");
const cookie = `${name}=${session.id}; ${name}.sig=${signature}`;

// Opaque (no resource server), so userinfo and introspection accept it.
const accessToken = await new provider.AccessToken({
  accountId: ACCOUNT_ID,
  client,
  grantId: session.grantIdFor(CLIENT_ID),
  gty: "authorization_code",
  scope: "openid profile email",
  sessionUid: session.uid,
}).save();

async function newRefreshToken() {
  return new provider.RefreshToken({
    accountId: ACCOUNT_ID,
    authTime: session.loginTs,
    client,
    grantId: await newGrant(),
    gty: "authorization_code",
    rotations: 0,
    scope: SCOPE,
    sessionUid: session.uid,
  }).save();
}

// In batches: ioredis pipelines the commands of one batch on its connection.
const refreshTokens = [];
for (let done = 0; done < count; done += 1000) {
  const batch = Array.from({ length: Math.min(1000, count - done) }, newRefreshToken);
  refreshTokens.push(...(await Promise.all(batch)));
}
const refreshTokensFile = join(dirname(out), "peer-refresh-tokens.txt");
writeFileSync(refreshTokensFile, refreshTokens.map((token) => `${token}\n`).join(""));

writeFileSync(
  out,
  JSON.stringify({ access_token: accessToken, refresh_tokens_file: refreshTokensFile, cookie }),
);
await redis.quit();
