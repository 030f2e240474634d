// The peer of `make bench`: panva's oidc-provider (OpenID Certified), set up
// like the IdP under test: the same clients and secrets, JWT access tokens
// signed RS256 or ES256 per client for client_credentials, opaque ones for
// users (userinfo, introspection, refresh), the same worker count (Node's
// cluster), all workers on one Redis store. Settings come from the
// environment (see bench/peer.py and config.mjs).
import cluster from "node:cluster";

import { createProvider, PORT } from "./config.mjs";

const workers = Number(process.env.PEER_WORKERS || 2);

if (cluster.isPrimary) {
  for (let n = 0; n < workers; n += 1) cluster.fork();
} else {
  createProvider().provider.listen(PORT, "127.0.0.1");
}
