"""The development outboxes of e-mail and SMS: messages kept in a Redis
list instead of being delivered, newest first, the newest
:data:`OUTBOX_SIZE` only, for a newcomer (and the tests) to read."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any
from typing import Generic
from typing import TypeVar

from idp.store import Store

__all__ = ["OUTBOX_SIZE", "Outbox"]

OUTBOX_SIZE = 200
Message = TypeVar("Message")


class Outbox(Generic[Message]):
    """A Redis list of dataclass messages of one ``kind`` (``mail``, ``sms``)."""

    def __init__(self, store: Store, kind: str, message_type: type[Message]) -> None:
        self.store = store
        self.key = store.key("outbox", kind)
        self.message_type = message_type

    def keep(self, message: Any) -> None:
        pipe = self.store.redis.pipeline()
        pipe.lpush(self.key, json.dumps(asdict(message)))
        pipe.ltrim(self.key, 0, OUTBOX_SIZE - 1)
        pipe.execute()

    def messages(self, limit: int = 50) -> list[Message]:
        """The newest ``limit`` messages, newest first."""
        if limit <= 0:
            return []
        raw = self.store.redis.lrange(self.key, 0, limit - 1)
        return [self.message_type(**json.loads(item)) for item in raw]

    def clear(self) -> None:
        """Empty the outbox."""
        self.store.redis.delete(self.key)
