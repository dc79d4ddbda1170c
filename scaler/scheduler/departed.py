"""The work of a client that is gone stops before it starts.

When the scheduler learns that a client is gone (its connection dropped, it said goodbye, or it was
silent past ``peer_timeout``), none of its tasks may start afterwards (detached ones, actors that
outlive their creator, excepted):

- queued tasks leave the queues in one pass, and tasks waiting for arguments leave the waiting
  lists in one pass per argument: a client may go with a million tasks queued, and one search per
  task would stall the scheduler (and every other peer) for minutes;
- tasks on workers are cancelled with one ``CancelOnWorker`` per worker: the worker drops those it
  holds unstarted (prefetched, staged in a task process, or fetching their arguments), so only a
  task that starts in the moment before that message arrives still starts, and it kills the
  running ones (their results have nobody to go to).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from scaler.protocol import messages as m
from scaler.scheduler.actors import actor_died
from scaler.scheduler.tasks import Task, TaskState

if TYPE_CHECKING:
    from scaler.scheduler.engine import ClientState, Engine

S = TaskState


def withdraw_work(engine: Engine, client: ClientState, actor_reason: str) -> int:
    """Cancel every task of ``client`` (no longer among ``engine.clients``); how many there were.
    Its actors (not detached) die with it, for ``actor_reason``."""
    doomed: list[Task] = []
    for task_id in client.tasks:
        task = engine.tasks.get(task_id)
        if task is not None and not task.detached:
            doomed.append(task)
    if not doomed:
        return 0
    for task in engine.queues.remove_client(client.identity):
        if task.detached:
            engine.queues.push(task)  # kept, in their order
    waiting = {task for task in doomed if task.state is S.WAITING}
    for dep in {dep for task in waiting for dep in (task.func_id, *task.deps)}:
        waiters = engine.waiting.get(dep)
        if waiters:
            kept = [task for task in waiters if task not in waiting]
            if kept:
                engine.waiting[dep] = kept
            else:
                del engine.waiting[dep]
    on_workers: dict[bytes, list[str]] = {}
    for task in doomed:
        task.released = True
        if task.actor_id:  # a non-detached actor dies with its owner, as in Ray
            actor_died(engine, task.actor_id, actor_reason)
        if task.state is S.WAITING or task.state is S.QUEUED:
            engine._finish_cancelled(task)
        elif task.state is S.ASSIGNED or task.state is S.RUNNING:
            task.cancel_requested = True
            if task.worker is not None:
                on_workers.setdefault(task.worker, []).append(task.task_id)
    for worker, task_ids in on_workers.items():
        engine.out.send(worker, m.CancelOnWorker(task_ids, True))
    return len(doomed)
