"""The scheduler's object store: payload frames kept by id, never unpickled.

An object stays while its owner holds it (``released`` is false), while any pending task is
pinned to it, or while a stored object holds a ref to it (a ref inside a result or a put value:
``hold``; which refs a peer may make its object hold is decided in ``holds.py``). ``pins`` counts
the tasks and holders. A holder may name an object not stored yet (a result still being computed):
``holders`` remembers it, and the object is pinned by its holders when it arrives. Frames are the
zmq frames received, stored and re-sent without copying.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from scaler.utility import shm


@dataclass(slots=True)
class StoredObject:
    object_id: str
    frames: list[Any]
    is_error: bool
    nbytes: int
    owner: bytes
    released: bool = False
    pins: int = 0
    on_workers: set[bytes] = field(default_factory=set)
    holds: tuple[str, ...] = ()


class ObjectStore:
    def __init__(self) -> None:
        self.objects: dict[str, StoredObject] = {}
        self.nbytes = 0
        self.freed_on_workers: dict[bytes, list[str]] = {}
        self.holders: dict[str, list[str]] = {}  # held object id -> ids of the stored objects holding it

    def __contains__(self, object_id: str) -> bool:
        return object_id in self.objects

    def get(self, object_id: str) -> StoredObject | None:
        return self.objects.get(object_id)

    def add(
        self, object_id: str, frames: list[Any], is_error: bool, owner: bytes, nbytes: int | None = None
    ) -> StoredObject:
        """Store ``frames``; ``nbytes`` is what they hold, if counted already (else counted here)."""
        old = self.objects.get(object_id)
        if old is not None:
            self._drop(old)
        if nbytes is None:
            nbytes = shm.payload_nbytes(frames)
        obj = StoredObject(object_id, frames, is_error, nbytes, owner)
        obj.pins = len(self.holders.get(object_id, ()))
        self.objects[object_id] = obj
        self.nbytes += nbytes
        return obj

    def hold(self, holder: StoredObject, object_ids: list[str]) -> None:
        """``holder`` holds refs to ``object_ids``: each stays (once stored) until ``holder`` goes."""
        if holder.holds or self.objects.get(holder.object_id) is not holder:
            return
        held = tuple(object_id for object_id in dict.fromkeys(object_ids) if object_id != holder.object_id)
        holder.holds = held
        for object_id in held:
            self.holders.setdefault(object_id, []).append(holder.object_id)
            obj = self.objects.get(object_id)
            if obj is not None:
                obj.pins += 1

    def release(self, object_id: str) -> None:
        obj = self.objects.get(object_id)
        if obj is None:
            return
        obj.released = True
        if obj.pins <= 0:
            self._drop(obj)

    def pin(self, object_id: str) -> None:
        obj = self.objects.get(object_id)
        if obj is not None:
            obj.pins += 1

    def unpin(self, object_id: str) -> None:
        obj = self.objects.get(object_id)
        if obj is None:
            return
        obj.pins -= 1
        if obj.pins <= 0 and obj.released:
            self._drop(obj)

    def release_owner(self, owner: bytes) -> list[str]:
        """Release every object of ``owner``; the ids it held."""
        ids = [o.object_id for o in self.objects.values() if o.owner == owner]
        for object_id in ids:
            self.release(object_id)
        return ids

    def lose_owner(self, owner: bytes) -> list[str]:
        """``owner`` died (it did not close): its objects go even where others hold them, as in Ray,
        where an object does not outlive its owner; readers then get ``OwnerDiedError``."""
        lost = [obj for obj in self.objects.values() if obj.owner == owner]
        for obj in lost:
            obj.released = True
            obj.pins = 0
            self._drop(obj)
        return [obj.object_id for obj in lost]

    def forget_worker(self, worker: bytes) -> None:
        for obj in self.objects.values():
            obj.on_workers.discard(worker)
        self.freed_on_workers.pop(worker, None)

    def _drop(self, first: StoredObject) -> None:
        """Remove an object, then what only it kept (iteratively: a long chain of holds is fine)."""
        stack = [first]
        while stack:
            obj = stack.pop()
            if self.objects.get(obj.object_id) is not obj:
                continue
            del self.objects[obj.object_id]
            self.nbytes -= obj.nbytes
            for worker in obj.on_workers:
                self.freed_on_workers.setdefault(worker, []).append(obj.object_id)
            if len(obj.frames) == 1:
                shm.release(obj.frames)
            obj.frames = []
            for object_id in obj.holds:
                holders = self.holders.get(object_id)
                if holders is not None:
                    holders.remove(obj.object_id)
                    if not holders:
                        del self.holders[object_id]
                held = self.objects.get(object_id)
                if held is not None:
                    held.pins -= 1
                    if held.pins <= 0 and held.released:
                        stack.append(held)
            obj.holds = ()
