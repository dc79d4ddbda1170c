"""Handing queued tasks to workers: per capability set, the head of its queue to the worker that
fits it (with a few more prefetched when the function is known to be short), a task's function and
arguments attached unless the worker has them; an idle worker steals from a busy one; a worker about
to go is drained of the tasks it holds unstarted.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from scaler.protocol import messages as m
from scaler.scheduler.tasks import Task
from scaler.scheduler.tasks import TaskState as S
from scaler.scheduler.workers import WorkerState
from scaler.utility.capabilities import parse_capabilities

if TYPE_CHECKING:
    from scaler.scheduler.engine import Engine

# How many unstarted tasks a busy worker may hold depends on how long the function recently ran:
# many below PREFETCH_BELOW (hides the round trip), one below PREFETCH_ONE_BELOW (hides the gap
# between tasks), none for longer or not yet measured functions (never parks long tasks behind
# one another; an idle worker reclaims what was parked anyway).
PREFETCH_BELOW = 0.010
PREFETCH_ONE_BELOW = 2.0


def schedule(engine: Engine) -> None:
    engine.dirty = False
    if engine.bundles.pending:
        engine.bundles.place(engine)
    for caps_key, queue in engine.queues.non_empty():
        request = parse_capabilities(caps_key)
        while queue.size:
            head = queue.peek()
            worker = engine.pool.choose(caps_key, request, _prefetch_for(engine, head))
            if worker is None:
                break
            task = queue.pop()
            if task is None:
                break
            _dispatch(engine, worker, task)
    if engine.maybe_idle:
        engine.maybe_idle = False
        _steal(engine)


def _prefetch_for(engine: Engine, task: Task | None) -> int:
    duration = engine.durations.get(task.func_id) if task is not None else None
    if duration is None or duration >= PREFETCH_ONE_BELOW:
        return 0
    return engine.config.prefetch if duration < PREFETCH_BELOW else 1


def _dispatch(engine: Engine, worker: WorkerState, task: Task) -> None:
    task.move(S.ASSIGNED)
    engine.pool.assign(worker, task)
    headers: list[m.ObjHeader] = []
    frames: list[Any] = []
    known = worker.known_objects
    for object_id in (task.func_id, *task.deps):
        if object_id in known:
            continue
        obj = engine.store.get(object_id)
        if obj is None:
            continue
        known.add(object_id)
        obj.on_workers.add(worker.identity)
        headers.append(m.ObjHeader(object_id, len(obj.frames), obj.is_error))
        frames.extend(obj.frames)
    frames.extend(task.frames)
    run = m.RunTask(
        task.task_id,
        task.func_id,
        task.run_caps if task.placement else task.caps_key,
        task.deps,
        headers,
        len(task.frames),
        task.name,
        task.num_returns,
        task.timeout,
        task.stream_output,
        task.resolve_nested,
        task.attempts,
    )
    engine.out.send(worker.identity, run, frames)


def drain_worker(engine: Engine, identity: bytes) -> None:
    """Stop feeding a worker and take back the tasks it holds unstarted (it is about to go)."""
    worker = engine.pool.workers.get(identity)
    if worker is None:
        return
    engine.pool.set_draining(identity, True)
    if worker.unstarted > 0 and not worker.reclaim_pending:
        worker.reclaim_pending = True
        engine.out.send(identity, m.Reclaim(worker.unstarted))


def _steal(engine: Engine) -> None:
    for worker in list(engine.pool.workers.values()):
        if not worker.idle() or worker.draining:
            continue
        victim = engine.pool.steal_victim(worker)
        if victim is None:
            continue
        victim.reclaim_pending = True
        engine.out.send(victim.identity, m.Reclaim(max(1, victim.unstarted // 2)))
