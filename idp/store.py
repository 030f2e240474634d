"""The Redis connection: a real server, or an in-process emulation (fakeredis)
when ``IDP_REDIS_URL`` is unset.

Every key goes through :meth:`Store.key` so that one Redis can serve several
deployments (and every test its own namespace).
"""

from __future__ import annotations

from typing import Any

import redis
from flask import Flask
from flask import current_app

__all__ = ["Store", "get_store", "init_app"]


class Store:
    """A Redis client plus the key prefix of this deployment."""

    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self.redis = client
        self.prefix = prefix

    def key(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)

    @classmethod
    def from_url(cls, url: str, prefix: str, **kwargs: Any) -> Store:
        if url:
            client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2, **kwargs)
        else:
            import fakeredis

            client = fakeredis.FakeRedis(**kwargs)
        return cls(client, prefix)


def init_app(app: Flask, store: Store | None = None) -> None:
    settings = app.extensions["idp.settings"]
    app.extensions["idp.store"] = store or Store.from_url(settings.redis_url, settings.redis_prefix)


def get_store() -> Store:
    store: Store = current_app.extensions["idp.store"]
    return store
