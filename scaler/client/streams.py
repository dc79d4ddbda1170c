"""A client's streaming tasks: the items announced so far, and waiting for "the next item, or the end".

The scheduler tells a streaming task's client of each item as it is stored (``StreamReady``, see
``scaler/scheduler/streams.py``), in order, all before the task's result. ``Streams`` (one per
client, fed on its I/O thread) keeps each task's items as refs owned by the client (a small value
comes with its payload); a ``StreamReader`` hands them out in order. The stream ends when the
task's future is done (its result, or the error that ended it: a generator's exception, a cancel, a
worker death past the retries), once every item announced before it has been taken.

A reader that is dropped (``close``) lets its items go: the refs it did not hand out are released,
and items announced afterwards are released as they arrive. A ``StreamReady`` for a task this
client no longer waits for is released at once too.
"""

from __future__ import annotations

import concurrent.futures
import threading
from contextlib import nullcontext
from dataclasses import dataclass
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


class Streams:
    """Every open stream of one client, by task id."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.cond = threading.Condition()
        self.items: dict[str, list[Item | None]] = {}  # a slot goes None once handed out
        self.waiters: dict[str, concurrent.futures.Future[None]] = {}  # one per stream, shared by its waits
        self.closed: set[str] = set()  # readers dropped while their task runs: later items are released

    def on_ready(self, msg: m.StreamReady, payload: list[Any]) -> None:
        """From the I/O thread: item ``msg.index`` of task ``msg.task_id`` is stored."""
        item = Item(ObjectRef(msg.object_id, self.client), Payload(payload, self.client) if msg.nbufs else None)
        with self.cond:
            items = self.items.get(msg.task_id)
            if items is None:
                if msg.task_id in self.closed or msg.task_id not in self.client._pending:
                    return  # nobody will read it: the ref goes here, which releases the object
                items = self.items[msg.task_id] = []
            items.append(item)
            self._wake(msg.task_id)

    def _wake(self, task_id: str) -> None:
        """A task's stream moved (an item came, or it ended); call with ``cond`` held."""
        self.cond.notify_all()
        waiter = self.waiters.pop(task_id, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def reader(self, source: Future) -> StreamReader:
        """A reader of the stream of ``source``'s task (``source`` is its result's future)."""
        with self.cond:
            self.items.setdefault(source.task_id, [])
        reader = StreamReader(self, source)
        source.add_done_callback(lambda _: self._ended(source.task_id))
        return reader

    def _ended(self, task_id: str) -> None:
        with self.cond:
            self.closed.discard(task_id)
            self._wake(task_id)

    def close(self, source: Future) -> None:
        with self.cond:
            self.items.pop(source.task_id, None)
            self.waiters.pop(source.task_id, None)
            if not source.done():
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
        items = self.streams.items.get(self.source.task_id)
        return items is None or self.index < len(items) or self.source.done()

    def exhausted(self) -> bool:
        """Whether every item announced so far has been handed out."""
        with self.streams.cond:
            items = self.streams.items.get(self.source.task_id)
            return items is None or self.index >= len(items)

    def waiter(self) -> concurrent.futures.Future[None]:
        """A future done once ``next`` would return without waiting (one shared by every wait meanwhile:
        a program polling ``ray.wait`` on an idle stream does not pile them up)."""
        with self.streams.cond:
            if self._ready():
                done: concurrent.futures.Future[None] = concurrent.futures.Future()
                done.set_result(None)
                return done
            waiter = self.streams.waiters.get(self.source.task_id)
            if waiter is None or waiter.done():
                waiter = self.streams.waiters[self.source.task_id] = concurrent.futures.Future()
            return waiter

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
            items = self.streams.items.get(self.source.task_id)
            if items is None or self.index >= len(items):
                return None
            item = items[self.index]
            items[self.index] = None  # handed out: the caller's ref alone keeps it now
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
