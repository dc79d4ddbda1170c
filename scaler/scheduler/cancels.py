"""Cancelling tasks: queued or waiting ones end at once; running ones are interrupted on their worker.

A client cancels its own tasks (or an actor's calls); with ``recursive``, the tasks submitted from
inside them go too, but an actor one of them created lives on (Ray's rule). Cancelling an actor's host
task kills the actor.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from scaler.protocol import messages as m
from scaler.scheduler.actors import actor_died
from scaler.scheduler.tasks import TERMINAL, Task
from scaler.scheduler.tasks import TaskState as S

if TYPE_CHECKING:
    from scaler.scheduler.engine import Engine


def cancel_tasks(engine: Engine, client: bytes, task_ids: list[str], force: bool, recursive: bool = True) -> None:
    for task_id in task_ids:
        task = engine.tasks.get(task_id)
        if task is not None and (task.client == client or task.actor_id):
            if recursive:
                _cancel_descendants(engine, task, force)
            _cancel(engine, task, force)


def _cancel_descendants(engine: Engine, task: Task, force: bool) -> None:
    """Tasks submitted from inside ``task``, and theirs; an actor it created lives on (Ray's rule)."""
    stack = list(task.children)
    while stack:
        child = engine.tasks.get(stack.pop())
        if child is not None and child.state not in TERMINAL and not child.actor_id:
            stack.extend(child.children)
            _cancel(engine, child, force)


def _cancel(engine: Engine, task: Task, force: bool) -> None:
    if task.state in TERMINAL:
        return
    if task.state in (S.WAITING, S.QUEUED):
        if task.state is S.QUEUED:
            engine.queues.remove(task)
        else:
            for dep in (task.func_id, *task.deps):
                waiters = engine.waiting.get(dep)
                if waiters and task in waiters:
                    waiters.remove(task)
        engine._finish_cancelled(task)
        return
    task.cancel_requested = True
    if task.worker is not None:
        engine.out.send(task.worker, m.CancelOnWorker([task.task_id], force))
    if task.actor_id:
        actor_died(engine, task.actor_id, "it was killed")
