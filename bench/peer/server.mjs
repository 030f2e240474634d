// The peer of `make bench`: panva's oidc-provider (OpenID Certified), set up
// like the IdP under test: the same clients and secrets, JWT access tokens
// signed RS256 or ES256 per client, introspection, the same worker count
// (Node's cluster). Settings come from the environment (see bench/peer.py).
import cluster from "node:cluster";
import { readFileSync } from "node:fs";

import Provider from "oidc-provider";

const port = Number(process.env.PEER_PORT || 8200);
const workers = Number(process.env.PEER_WORKERS || 2);

if (cluster.isPrimary) {
  for (let n = 0; n < workers; n += 1) cluster.fork();
} else {
  const clients = JSON.parse(readFileSync(process.env.PEER_CLIENTS, "utf8"));
  const algs = Object.fromEntries(clients.map((c) => [c.client_id, c.alg]));
  const provider = new Provider(`http://127.0.0.1:${port}`, {
    clients: clients.map((c) => ({
      client_id: c.client_id,
      client_secret: c.client_secret,
      grant_types: ["client_credentials"],
      response_types: [],
      redirect_uris: [],
      token_endpoint_auth_method: "client_secret_basic",
      id_token_signed_response_alg: c.alg,
    })),
    jwks: JSON.parse(readFileSync(process.env.PEER_JWKS, "utf8")),
    scopes: ["api"],
    ttl: { ClientCredentials: 300 },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      introspection: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => "urn:bench:api",
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
  provider.listen(port, "127.0.0.1");
}
