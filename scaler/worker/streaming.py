"""Sending a generator task's values one by one, as they are yielded (the worker's side of streaming).

A streaming task (Ray's ``num_returns="streaming"``) calls ``stream`` (``stream_async`` for an async
generator) on its generator inside the task. Each value is pickled and sent at once as a
``StreamItem`` with its index, through the task's ``emit`` (``runtime.TaskContext``): a task process
writes it to its agent, which forwards it to the scheduler while the task is the one it runs there;
an actor's dedicated host queues it for its loop, in order with its calls' results. The scheduler
stores and announces each item as it comes (``scaler/scheduler/streams.py``), so the caller gets
the value's ref before the generator goes on.

``stream`` returns the number of values sent, the task's result. An exception from the generator
propagates after the values before it were sent: the task fails with it, which ends the stream
after those values (Ray: the values, then a ref that raises, then the end), and ``retry_exceptions``
re-runs it as any task. Refs inside a value are lent to the task by the task's own clients first,
which then sync, as for a task's result (``runtime.settle``): the stored item holds them.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Callable, Iterable
from typing import Any

from scaler.protocol import messages as m
from scaler.utility import serialization as ser
from scaler.worker import runtime


class _Sink:
    """Where the current task's items go, and how many went."""

    def __init__(self) -> None:
        context = runtime.current()
        if context is None or context.emit is None:
            raise RuntimeError("a streaming generator can only run as a task on a Scaler worker")
        self.context = context
        self.emit: Callable[[Any, list[Any]], None] = context.emit
        self.count = 0

    def encode(self, value: Any) -> tuple[m.StreamItem, list[Any]]:
        frames, holds = ser.dumps_holding(value)
        item = m.StreamItem(self.context.task_id, self.count, len(frames), self.context.attempt, holds)
        return item, frames

    def lend(self, holds: list[str]) -> None:
        """The task's clients keep the refs inside an item alive for the task, then sync."""
        for client in list(self.context.senders):
            if not client._closed:
                client._lend(self.context.task_id, holds)
                client.sync()

    def send(self, item: m.StreamItem, frames: list[Any]) -> None:
        self.emit(item, frames)
        self.count += 1


def stream(values: Iterable[Any]) -> int:
    """Send each of ``values`` as the current task's next stream item; how many were sent."""
    sink = _Sink()
    for value in values:
        item, frames = sink.encode(value)
        if item.holds and sink.context.senders:
            sink.lend(item.holds)
        sink.send(item, frames)
    return sink.count


async def stream_async(values: AsyncIterable[Any]) -> int:
    """``stream`` for an async generator, run on its event loop (a sync wait runs off the loop)."""
    import asyncio  # here: only an async actor's process pays for asyncio

    sink = _Sink()
    async for value in values:
        item, frames = sink.encode(value)
        if item.holds and sink.context.senders:
            await asyncio.to_thread(sink.lend, item.holds)
        sink.send(item, frames)
    return sink.count
