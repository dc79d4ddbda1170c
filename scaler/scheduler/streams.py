"""Streaming generator tasks in the scheduler: each yielded value is stored and announced as it comes.

A task whose generator streams (Ray's ``num_returns="streaming"``) sends each value the moment it is
yielded, as a ``StreamItem`` with its index (0, 1, ...), before its ``TaskDone``. Item ``i`` is
stored as the object ``<task id>#s<i>``: ``producer_of`` names the task, so a ``GetObject`` for an
item not yet stored waits while the task lives, and the item is owned by the task's client like
the task's results (released by it, dropped when it leaves). The client is told at once with a
``StreamReady`` (small values pushed with it, as ``TaskResult`` pushes results); the task's own
result, sent after every item, ends the stream (a failed or cancelled task's error ends it too).

Who may send an item: only the worker the task is assigned to, and for the task's current attempt.
Any other worker's item (a task not its own, or one that does not exist) is refused (``Rejected``:
logged and counted, the scheduler goes on); an item of an earlier attempt, or of a task being
cancelled, is dropped quietly (a race, not an attack). Items come in order: index ``i`` only after
``i - 1``.

Retries. A task that is re-run (its worker died, or ``retry_exceptions``) yields its values again
from index 0. As in Ray, the caller keeps what an earlier attempt delivered: an item whose index is
already stored is dropped, so no index is ever delivered twice, and the new attempt's items follow
from the first index not yet delivered. The stream's length is the number of items delivered.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from scaler.protocol import messages as m
from scaler.scheduler.intake import Rejected
from scaler.scheduler.tasks import TaskState

if TYPE_CHECKING:
    from scaler.scheduler.engine import Engine

ITEM_MARK = "#s"  # an item's object id: <task id>#s<index>
MAX_ITEMS = 10_000_000  # items one task may stream


def item_id(task_id: str, index: int) -> str:
    return f"{task_id}{ITEM_MARK}{index}"


def is_item(object_id: str) -> bool:
    """Whether ``object_id`` names a stream item (not one of a task's results)."""
    return ITEM_MARK in object_id


class Streams:
    """How many items each streaming task has delivered so far (forgotten when the task ends)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.delivered: dict[str, int] = {}

    def item(self, worker: bytes, msg: m.StreamItem, frames: list[Any]) -> None:
        """A worker sent item ``msg.index`` of task ``msg.task_id``: store it and tell the client."""
        engine = self.engine
        task = engine.tasks.get(msg.task_id)
        if task is None or task.worker != worker:
            raise Rejected(f"stream item for task {msg.task_id!r}, which is not assigned to this worker")
        if not 0 <= msg.index < MAX_ITEMS:
            raise Rejected(f"stream item index {msg.index} is out of range (0 to {MAX_ITEMS - 1})")
        if msg.attempt != task.attempts or task.cancel_requested:
            return  # an earlier attempt's, or the task is being cancelled: its stream ends with the error
        if task.state not in (TaskState.RUNNING, TaskState.ASSIGNED) or task.client not in engine.clients:
            return  # nobody to own it (a detached task whose client left)
        count = self.delivered.get(task.task_id, 0)
        if msg.index < count:
            return  # a retry yields again what an earlier attempt delivered: Ray keeps the first values
        if msg.index > count:
            raise Rejected(f"stream item {msg.index} of task {msg.task_id!r} skips item {count}")
        self.delivered[task.task_id] = count + 1
        object_id = item_id(task.task_id, msg.index)
        engine._store_result(task, object_id, frames, False, msg.holds)
        if task.released:
            return
        push = sum(len(frame) for frame in frames) <= engine.config.push_result_bytes
        ready = m.StreamReady(task.task_id, msg.index, object_id, len(frames) if push else 0)
        engine.out.send(task.client, ready, frames if push else [])

    def ended(self, task_id: str) -> None:
        self.delivered.pop(task_id, None)
