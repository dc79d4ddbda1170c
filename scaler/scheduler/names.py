"""The scheduler's small table of named values (a Ray named actor's handle, for one), and who owns each.

An entry belongs to the client that wrote it: while that client is connected, nobody else overwrites
or deletes it (a gone client's entry anyone may delete, as ``ray.kill`` does). An entry may be bound
to an actor: it goes when that actor dies, so the name of a dead actor is free again, as in Ray (a
non-detached actor dies with its owner; a detached one when it is killed or exhausts its restarts).
"""

from __future__ import annotations

from collections.abc import Container
from typing import Any


class Names:
    def __init__(self) -> None:
        self.values: dict[str, list[Any]] = {}
        self.owners: dict[str, bytes] = {}
        self.bound: dict[str, set[str]] = {}  # actor id -> the keys that go when it dies
        self.binding: dict[str, str] = {}  # key -> the actor it is bound to

    def put(self, peer: bytes, key: str, frames: list[Any], if_absent: bool, actor_id: str) -> list[Any]:
        """Store ``frames`` under ``key`` unless another peer's entry (or, ``if_absent``, any) is there;
        the frames stored there afterwards."""
        owner = self.owners.get(key)
        if owner is None or (owner == peer and not if_absent):
            self._forget(key)
            self.values[key] = frames
            self.owners[key] = peer
            if actor_id:
                self.bound.setdefault(actor_id, set()).add(key)
                self.binding[key] = actor_id
        return self.values[key]

    def get(self, key: str) -> list[Any] | None:
        return self.values.get(key)

    def delete(self, peer: bytes, key: str, live_clients: Container[bytes]) -> None:
        owner = self.owners.get(key)
        if owner is not None and owner != peer and owner in live_clients:
            return
        self._forget(key)

    def actor_died(self, actor_id: str) -> None:
        for key in list(self.bound.get(actor_id, ())):
            self._forget(key)

    def _forget(self, key: str) -> None:
        self.values.pop(key, None)
        self.owners.pop(key, None)
        actor_id = self.binding.pop(key, None)
        if actor_id is not None:
            keys = self.bound[actor_id]
            keys.discard(key)
            if not keys:
                del self.bound[actor_id]
