"""The agent's copies of the objects its tasks need, and what each task process already holds.

A function or argument reaches a worker once (kept LRU, bounded by ``cache_bytes``) and each task
process once (bounded per process by ``process_cache_bytes``; the process is told what to drop).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

from scaler.protocol import messages as m
from scaler.worker.children import Child


def _size(frames: list[Any]) -> int:
    return sum(len(f) for f in frames)


class ObjectCache:
    def __init__(self, limit: int, process_limit: int) -> None:
        self.entries: OrderedDict[str, tuple[list[Any], bool]] = OrderedDict()
        self.nbytes = 0
        self.limit = limit
        self.process_limit = process_limit

    def __contains__(self, object_id: str) -> bool:
        return object_id in self.entries

    def has_all(self, object_ids: Iterable[str]) -> bool:
        entries = self.entries
        return all(oid in entries for oid in object_ids)

    def put(self, object_id: str, frames: list[Any], is_error: bool) -> None:
        if object_id in self.entries:
            return
        self.entries[object_id] = (frames, is_error)
        self.nbytes += _size(frames)
        while self.nbytes > self.limit and len(self.entries) > 1:
            _, (old, _) = self.entries.popitem(last=False)
            self.nbytes -= _size(old)

    def drop(self, object_ids: list[str], children: Iterable[Child]) -> dict[Child, list[str]]:
        """Forget ``object_ids``; returns, per task process holding some, the ids it must drop."""
        for object_id in object_ids:
            entry = self.entries.pop(object_id, None)
            if entry is not None:
                self.nbytes -= _size(entry[0])
        told: dict[Child, list[str]] = {}
        for child in children:
            gone = [oid for oid in object_ids if oid in child.known]
            for oid in gone:
                child.known_bytes -= child.known.pop(oid)
            if gone:
                told[child] = gone
        return told

    def for_process(
        self, child: Child, needs: list[str], keep: list[str]
    ) -> tuple[list[m.ObjHeader], list[Any], list[str]]:
        """Headers and frames of the ``needs`` the process lacks, and what it should drop to make room
        (never one of ``keep``)."""
        headers: list[m.ObjHeader] = []
        frames: list[Any] = []
        for object_id in needs:
            if object_id in child.known:
                continue
            obj_frames, is_error = self.entries[object_id]
            self.entries.move_to_end(object_id)
            size = _size(obj_frames)
            child.known[object_id] = size
            child.known_bytes += size
            headers.append(m.ObjHeader(object_id, len(obj_frames), is_error))
            frames.extend(obj_frames)
        drop: list[str] = []
        if child.known_bytes > self.process_limit:
            for object_id in list(child.known):
                if child.known_bytes <= self.process_limit:
                    break
                if object_id not in keep:
                    child.known_bytes -= child.known.pop(object_id)
                    drop.append(object_id)
        return headers, frames, drop
