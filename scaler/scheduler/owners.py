"""Whose missing object was it: the id prefixes of clients that left, so a lookup can say the owner died.

A client names its tasks and objects ``<prefix><n>``, with one random prefix per process
(``scaler.utility.ids.IdMaker``: ``t<hex>.``); a task's results are ``<task id>`` or
``<task id>#<i>``. When a client leaves, the prefixes of the ids it still had are remembered in a
bounded table (oldest forgotten first), so that a request for one of its objects, from a process
that borrowed the ref, is answered with ``OwnerDiedError`` (Ray's name for this case) rather than
only ``ObjectLostError``. A made-up id can at worst change which of the two a request gets.
"""

from __future__ import annotations

from collections.abc import Iterable

DEFAULT_LIMIT = 65_536


def prefix_of(object_id: str) -> str:
    """The owner prefix of a task or object id (up to its last ``.``; empty if it has none)."""
    return object_id[: object_id.rfind(".") + 1]


class DeadOwners:
    def __init__(self, limit: int = DEFAULT_LIMIT) -> None:
        self.limit = limit
        self.owners: dict[str, str] = {}  # prefix -> who owned it, for messages

    def remember(self, ids: Iterable[str], owner: str) -> None:
        """``owner`` has left; ``ids`` are the task and object ids it held."""
        for prefix in {prefix_of(object_id) for object_id in ids}:
            if prefix:
                self.owners.pop(prefix, None)
                self.owners[prefix] = owner
        while len(self.owners) > self.limit:
            del self.owners[next(iter(self.owners))]

    def why_missing(self, object_id: str) -> tuple[str, str]:
        """The error (a ``scaler.errors`` name) and message for ``object_id``, which does not exist."""
        owner = self.owners.get(prefix_of(object_id))
        if owner is not None:
            return "OwnerDiedError", f"object {object_id} is lost: its owner ({owner}) is gone"
        return "ObjectLostError", f"object {object_id} does not exist (released, or its owner disconnected)"
