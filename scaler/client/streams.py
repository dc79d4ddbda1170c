"""A client's streaming tasks: the items announced so far, and waiting for "the next item, or the end".

The scheduler tells a streaming task's client of each item as it is stored (``StreamReady``, see
``scaler/scheduler/streams.py``), in order, all before the task's ``TaskResult``. ``Streams`` (one
per client, fed on its I/O thread) keeps each task's items as refs owned by the client (a small
value comes with its payload); a ``StreamReader`` hands them out in order. The stream ends when
the client is done with the task (``ended``: its result arrived and its future holds it, or the
task failed here, e.g. the connection was lost), once every item announced before has been
taken. So a task cancelled here (its future is cancelled at once) still hands out the items the
scheduler accepted before the cancel reached it; its result, the cancel, comes after them.

A reader that is dropped (``close``) lets its items go: the refs it did not hand out are released,
and items announced afterwards are released as they arrive. A ``StreamReady`` for a task this
client no longer waits for is released at once too.
"""

from __future__ import annotations

import concurrent.futures
import threading
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from scaler.client.future import Future, ObjectRef, Payload
from scaler.protocol import messages as m
from scaler.worker import runtime

if TYPE_CHECKING:
    from scaler.client.client import Client


@dataclass(frozen=True, slots=True)
class Item:
    """One stream item: its ref (owned by the client) and its payload when it was pushed."""

    ref: ObjectRef
    payload: Payload | None


@dataclass(slots=True)
class _Stream:
    items: list[Item | None] = field(default_factory=list)  # a slot goes None once handed out
    ended: bool = False  # the task's outcome is in its future: no item comes after
    waiter: concurrent.futures.Future[None] | None = None  # shared by every wait for the next move


class Streams:
    """Every open stream of one client, by task id."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.cond = threading.Condition()
        self.streams: dict[str, _Stream] = {}
        self.closed: set[str] = set()  # readers dropped while their task runs: later items are released

    def on_ready(self, msg: m.StreamReady, payload: list[Any]) -> None:
        """From the I/O thread: item ``msg.index`` of task ``msg.task_id`` is stored."""
        item = Item(ObjectRef(msg.object_id, self.client), Payload(payload, self.client) if msg.nbufs else None)
        with self.cond:
            stream = self.streams.get(msg.task_id)
            if stream is None:
                if msg.task_id in self.closed or msg.task_id not in self.client._pending:
                    return  # nobody will read it: the ref goes here, which releases the object
                stream = self.streams[msg.task_id] = _Stream()
            stream.items.append(item)
            self._wake(stream)

    def ended(self, task_id: str) -> None:
        """From the client: task ``task_id`` is over here (its future holds its outcome)."""
        with self.cond:
            self.closed.discard(task_id)
            stream = self.streams.get(task_id)
            if stream is not None:
                stream.ended = True
                self._wake(stream)

    def _wake(self, stream: _Stream) -> None:
        """A stream moved (an item came, or it ended); call with ``cond`` held."""
        self.cond.notify_all()
        waiter, stream.waiter = stream.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def reader(self, source: Future) -> StreamReader:
        """A reader of the stream of ``source``'s task (``source`` is its result's future)."""
        with self.cond:
            stream = self.streams.setdefault(source.task_id, _Stream())
            if source.task_id not in self.client._pending and source.done():
                stream.ended = True  # over before anyone read it
        return StreamReader(self, source)

    def close(self, source: Future) -> None:
        with self.cond:
            stream = self.streams.pop(source.task_id, None)
            if stream is not None and not stream.ended:
                self.closed.add(source.task_id)


class StreamReader:
    """Hands out one task's items in order; ``None`` once the stream has ended."""

    def __init__(self, streams: Streams, source: Future) -> None:
        self.streams = streams
        self.source = source
        self.index = 0

    def ready(self) -> bool:
        """Whether ``next`` returns without waiting."""
        with self.streams.cond:
            return self._ready()

    def _ready(self) -> bool:
        stream = self.streams.streams.get(self.source.task_id)
        return stream is None or self.index < len(stream.items) or stream.ended

    def at_end(self) -> bool:
        """Whether the stream has ended and every item has been handed out."""
        with self.streams.cond:
            stream = self.streams.streams.get(self.source.task_id)
            return stream is None or (stream.ended and self.index >= len(stream.items))

    def waiter(self) -> concurrent.futures.Future[None]:
        """A future done once ``next`` would return without waiting (one shared by every wait meanwhile:
        a program polling ``ray.wait`` on an idle stream does not pile them up)."""
        with self.streams.cond:
            stream = self.streams.streams.get(self.source.task_id)
            if stream is None or self._ready():
                done: concurrent.futures.Future[None] = concurrent.futures.Future()
                done.set_result(None)
                return done
            if stream.waiter is None or stream.waiter.done():
                stream.waiter = concurrent.futures.Future()
            return stream.waiter

    def next(self, timeout: float | None = None) -> Item | None:
        """The next item, waiting for it up to ``timeout`` seconds; ``None`` at the end of the stream."""
        cond = self.streams.cond
        if not self.ready():
            # A task waiting here lends its capacity out (outside the lock: that tells the agent).
            with runtime.blocking() if runtime.current() is not None else nullcontext(), cond:
                cond.wait_for(self._ready, timeout)
        with cond:
            if not self._ready():
                raise concurrent.futures.TimeoutError(f"no stream item of task {self.source.task_id} in {timeout}s")
            stream = self.streams.streams.get(self.source.task_id)
            if stream is None or self.index >= len(stream.items):
                return None
            item = stream.items[self.index]
            stream.items[self.index] = None  # handed out: the caller's ref alone keeps it now
            self.index += 1
            return item

    def close(self) -> None:
        """No more items are wanted: those not handed out are released, and so are later ones."""
        self.streams.close(self.source)


def open_stream(source: Future) -> StreamReader:
    """A reader of the items of the streaming task whose result ``source`` is."""
    client = source._client
    if client is None:
        raise RuntimeError(f"task {source.task_id}'s client is gone: its stream cannot be read")
    streams: Streams = client._streams
    return streams.reader(source)
