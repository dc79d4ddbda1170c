"""The scheduler's object store: payload frames kept by id, never unpickled.

An object stays while its owner holds it (``released`` is false) or while any pending task is
pinned to it. Frames are the zmq frames received, stored and re-sent without copying.
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


class ObjectStore:
    def __init__(self) -> None:
        self.objects: dict[str, StoredObject] = {}
        self.nbytes = 0
        self.freed_on_workers: dict[bytes, list[str]] = {}

    def __contains__(self, object_id: str) -> bool:
        return object_id in self.objects

    def get(self, object_id: str) -> StoredObject | None:
        return self.objects.get(object_id)

    def add(self, object_id: str, frames: list[Any], is_error: bool, owner: bytes) -> StoredObject:
        old = self.objects.get(object_id)
        if old is not None:
            self._drop(old)
        nbytes = sum(len(f) for f in frames)
        obj = StoredObject(object_id, frames, is_error, nbytes, owner)
        self.objects[object_id] = obj
        self.nbytes += nbytes
        return obj

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

    def forget_worker(self, worker: bytes) -> None:
        for obj in self.objects.values():
            obj.on_workers.discard(worker)
        self.freed_on_workers.pop(worker, None)

    def _drop(self, obj: StoredObject) -> None:
        if self.objects.get(obj.object_id) is obj:
            del self.objects[obj.object_id]
            self.nbytes -= obj.nbytes
        for worker in obj.on_workers:
            self.freed_on_workers.setdefault(worker, []).append(obj.object_id)
        if len(obj.frames) == 1:
            shm.release(obj.frames)
        obj.frames = []
