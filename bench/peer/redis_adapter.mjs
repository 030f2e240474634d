// A Redis adapter for oidc-provider, so that every cluster worker (and the
// seeding script) shares one store. The interface is oidc-provider's: one
// adapter per model name, with upsert/find/findByUid/findByUserCode/consume/
// destroy/revokeByGrantId.
//
// Keys: "<Model>:<id>" is a hash {payload: JSON, consumed?: epoch seconds};
// "grant:<grantId>" is the set of the keys of the tokens issued under a grant;
// "uid:<uid>" and "userCode:<code>" point to a Session or a DeviceCode id.

// The models whose entries belong to a grant (revoked together with it).
const GRANTABLE = new Set([
  "AccessToken",
  "AuthorizationCode",
  "RefreshToken",
  "DeviceCode",
  "BackchannelAuthenticationRequest",
  "PreAuthorizedCode",
]);

const CONSUME = "if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('HSET', KEYS[1], 'consumed', ARGV[1]) end";

// An adapter class bound to one ioredis client.
export function redisAdapter(redis) {
  return class RedisAdapter {
    constructor(model) {
      this.model = model;
    }

    key(id) {
      return `${this.model}:${id}`;
    }

    async upsert(id, payload, expiresIn) {
      const key = this.key(id);
      // HSET replaces the payload at once: a concurrent reader sees the old or the new.
      const writes = redis.pipeline().hset(key, "payload", JSON.stringify(payload));
      if (expiresIn) writes.expire(key, expiresIn);
      else writes.persist(key);
      if (GRANTABLE.has(this.model) && payload.grantId) {
        const grantKey = `grant:${payload.grantId}`;
        writes.sadd(grantKey, key);
        // The set lives as long as its longest-lived token.
        if (expiresIn) writes.expire(grantKey, expiresIn, "NX").expire(grantKey, expiresIn, "GT");
        else writes.persist(grantKey);
      }
      const ttl = expiresIn ? ["EX", expiresIn] : [];
      if (this.model === "Session") writes.set(`uid:${payload.uid}`, id, ...ttl);
      if (payload.userCode) writes.set(`userCode:${payload.userCode}`, id, ...ttl);
      // exec() reports each command's error in its result instead of throwing.
      for (const [error] of await writes.exec()) if (error) throw error;
    }

    async find(id) {
      const { payload, consumed } = await redis.hgetall(this.key(id));
      if (!payload) return undefined;
      const stored = JSON.parse(payload);
      if (consumed) stored.consumed = Number(consumed);
      return stored;
    }

    async findByUid(uid) {
      const id = await redis.get(`uid:${uid}`);
      return id ? this.find(id) : undefined;
    }

    async findByUserCode(userCode) {
      const id = await redis.get(`userCode:${userCode}`);
      return id ? this.find(id) : undefined;
    }

    async consume(id) {
      // Marks the entry only while it exists (HSET alone would revive it without a TTL).
      await redis.eval(CONSUME, 1, this.key(id), Math.floor(Date.now() / 1000));
    }

    async destroy(id) {
      await redis.del(this.key(id));
    }

    async revokeByGrantId(grantId) {
      const grantKey = `grant:${grantId}`;
      const keys = await redis.smembers(grantKey);
      await redis.del(grantKey, ...keys);
    }
  };
}
