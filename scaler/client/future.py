"""Futures and object refs handed to users.

``Future`` is a ``concurrent.futures.Future`` (also awaitable) whose value is unpickled lazily on
first ``result()``. Both ``Future`` and ``ObjectRef`` pickle as references, so passing one as a task
argument makes the scheduler hold the task until the object exists. Dropping the last reference
tells the scheduler the object may be freed.

Refs that arrive inside a value (a task's result, a put value) are the client's too once it loads
the value: the client puts them as one object of its own that holds them, kept by those refs
(``Client._hold_loaded``), so they stay valid after the value they came in is released.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Generator
from typing import TYPE_CHECKING, Any

from scaler.errors import TaskCancelledError
from scaler.utility import serialization as ser
from scaler.worker import runtime

if TYPE_CHECKING:
    from scaler.client.client import Client


_local = threading.local()  # .made: while a Payload loads, the refs unpickled (see _borrowed_ref)


class Payload:
    """Frames of a stored value, unpickled once on demand (refs inside held by ``client``)."""

    __slots__ = ("client", "frames", "loaded", "lock", "value")

    def __init__(self, frames: list[Any], client: Client | None = None) -> None:
        self.frames = frames
        self.client = client
        self.loaded = False
        self.value: Any = None
        self.lock = threading.Lock()

    def get(self) -> Any:
        if not self.loaded:
            with self.lock:
                if not self.loaded:
                    previous = getattr(_local, "made", None)
                    made: list[ObjectRef] = []
                    _local.made = made
                    try:
                        self.value = ser.loads(self.frames)
                    finally:
                        _local.made = previous
                    if made and self.client is not None:
                        self.client._hold_loaded(made)
                    self.loaded = True
                    self.frames = []
        return self.value


class Remote:
    """Marks a result that stayed in the scheduler (too large to push): fetched on demand."""

    __slots__ = ()


REMOTE = Remote()


class Future(concurrent.futures.Future[Any]):
    def __init__(self, client: Client | None, object_id: str, task_id: str) -> None:
        super().__init__()
        self.object_id = object_id
        self.task_id = task_id
        self._client = client
        self._fetched: Payload | None = None

    @property
    def key(self) -> str:
        return self.object_id

    def _wait(self, timeout: float | None) -> None:
        if not self.done():
            if runtime.current() is not None:
                with runtime.blocking():
                    self._wait_done(timeout)
            else:
                self._wait_done(timeout)
        if not self.done():
            raise concurrent.futures.TimeoutError(f"task {self.task_id} did not finish within {timeout}s")

    def _wait_done(self, timeout: float | None) -> None:
        with self._condition:
            if not self.done():
                self._condition.wait(timeout)

    def result(self, timeout: float | None = None) -> Any:
        self._wait(timeout)
        raw = super().result(0)
        if isinstance(raw, Payload):
            return raw.get()
        if raw is REMOTE:
            if self._fetched is None:
                if self._client is None:
                    raise RuntimeError("this future's client is gone")
                self._fetched = self._client._fetch_payload(self.object_id, timeout)
            return self._fetched.get()
        return raw

    def exception(self, timeout: float | None = None) -> BaseException | None:
        self._wait(timeout)
        return super().exception(0)

    def cancel(self, force: bool = False, recursive: bool = True) -> bool:
        """Cancel the task (False if it already ended). ``force`` after a plain cancel kills it."""
        if self._client is None:
            return False
        if not self._set_cancelled():
            if not (force and self.cancelled()):
                return self.cancelled()
        self._client._cancel_ids([self.task_id], force, recursive)
        return True

    def _set_cancelled(self) -> bool:
        try:
            self.set_exception(TaskCancelledError(f"task {self.task_id} was cancelled"))
        except concurrent.futures.InvalidStateError:
            return False
        return True

    def cancelled(self) -> bool:
        if not self.done():
            return False
        return isinstance(super().exception(0), TaskCancelledError)

    def __await__(self) -> Generator[Any, None, Any]:
        yield from asyncio.wrap_future(self).__await__() if not self.done() else iter(())
        return self.result()

    def __reduce__(self) -> tuple[Any, tuple[str, bool]]:
        ser.note_ref(self.object_id)
        return ser.load_ref, (self.object_id, False)

    def __del__(self) -> None:
        client = self._client
        if client is not None:
            client._release_later(self.object_id)

    def __repr__(self) -> str:
        state = "done" if self.done() else "pending"
        return f"<scaler.Future {self.object_id} {state}>"


class ObjectRef:
    """A reference to an object in the scheduler's store (from ``put``, or received in a task)."""

    __slots__ = ("__weakref__", "_client", "_holder", "object_id")

    def __init__(self, object_id: str, client: Client | None) -> None:
        self.object_id = object_id
        self._client = client
        self._holder: ObjectRef | None = None  # a ref loaded from a value: the object holding it here

    def __reduce__(self) -> tuple[Any, tuple[str, bool]]:
        ser.note_ref(self.object_id)
        return ser.load_ref, (self.object_id, False)

    def __del__(self) -> None:
        client = self._client
        if client is not None:
            client._release_later(self.object_id)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ObjectRef) and other.object_id == self.object_id

    def __hash__(self) -> int:
        return hash(self.object_id)

    def __repr__(self) -> str:
        return f"ObjectRef({self.object_id})"


def _borrowed_ref(object_id: str) -> ObjectRef:
    ref = ObjectRef(object_id, None)
    made = getattr(_local, "made", None)
    if made is not None:
        made.append(ref)
    return ref


ser.ref_factory = _borrowed_ref
