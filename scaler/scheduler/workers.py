"""Connected workers, their capacity accounting, and where the next task of a queue goes.

A worker is *free* for a task when it has every label and enough uncommitted quantity (DESIGN §3).
To hide the round trip, a worker whose capacity is full may also take up to ``prefetch`` tasks it
has not started yet; those wait on the worker and can be reclaimed by an idle peer. A worker holding
placement groups' bundles takes none: it would start them on capacity the scheduler split.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from scaler.scheduler.tasks import Task, TaskState
from scaler.utility.capabilities import Capabilities, declared, fit_count, takes


@dataclass(slots=True, eq=False)
class WorkerState:
    identity: bytes
    name: str
    capabilities: Capabilities
    total: dict[str, float]
    committed: dict[str, float]
    assigned: dict[str, Task] = field(default_factory=dict)
    unstarted: int = 0
    known_objects: set[str] = field(default_factory=set)
    draining: bool = False
    interrupted: float = 0.0  # time.monotonic() its host goes (a spot interruption notice); 0: none
    reclaim_pending: bool = False
    completed: int = 0
    pid: int = 0
    host: str = ""
    unit: str = ""
    load: int = 0  # tasks its agent last said it runs (heartbeat)
    host_attempts: int = -1  # an actor's dedicated worker: its host task's crashes counted when it joined
    bundles: int = 0  # placement groups' bundles reserved on it: nothing is prefetched to it
    idle_since: float | None = field(default_factory=time.monotonic)

    def fits_free(self, request: Capabilities) -> bool:
        if not request.labels <= self.capabilities.labels:
            return False
        committed = self.committed
        total = self.total
        for name, amount in request.quantities:
            if total.get(name, 0.0) - committed.get(name, 0.0) + 1e-9 < amount:
                return False
        return True

    def commit(self, request: Capabilities, sign: float) -> None:
        """Count ``request`` in (``sign`` 1) or out (-1). Only the names the worker has now are counted:
        a placement group's names go with the group while its killed tasks are still being let go."""
        committed, total = self.committed, self.total
        for name, amount in request.quantities:
            if name in total:
                committed[name] = committed.get(name, 0.0) + sign * amount
            else:
                committed.pop(name, None)

    def idle(self) -> bool:
        return not self.assigned


class WorkerPool:
    def __init__(self, prefetch: int) -> None:
        self.workers: dict[bytes, WorkerState] = {}
        self.prefetch = prefetch
        self._eligible: dict[str, list[WorkerState]] = {}
        self._rotation = 0

    def add(self, worker: WorkerState) -> None:
        self.workers[worker.identity] = worker
        self._eligible.clear()

    def remove(self, identity: bytes) -> WorkerState | None:
        self._eligible.clear()
        return self.workers.pop(identity, None)

    def changed(self) -> None:
        """Some worker's capabilities changed (a placement group's bundles came or went)."""
        self._eligible.clear()

    def set_draining(self, identity: bytes, draining: bool) -> None:
        worker = self.workers.get(identity)
        if worker is not None:
            worker.draining = draining
            self._eligible.clear()

    def eligible(self, caps_key: str, request: Capabilities) -> list[WorkerState]:
        found = self._eligible.get(caps_key)
        if found is None:
            found = [w for w in self.workers.values() if not w.draining and takes(w.capabilities, request)]
            self._eligible[caps_key] = found
        return found

    def choose(self, caps_key: str, request: Capabilities, prefetch: int | None = None) -> WorkerState | None:
        """The worker that should take the next task of this capability set, or None."""
        candidates = self.eligible(caps_key, request)
        n = len(candidates)
        if n == 0:
            return None
        self._rotation += 1
        start = self._rotation % n
        limit = self.prefetch if prefetch is None else min(prefetch, self.prefetch)
        best_prefetch: WorkerState | None = None
        best_parked = limit
        for i in range(n):
            worker = candidates[(start + i) % n]
            if worker.fits_free(request):
                return worker
            if limit > 0 and not worker.bundles:
                # A worker starts whatever fits its own, unsplit capacity, so a task parked on a worker
                # holding bundles could run on a reservation that is not its own (or outside its own).
                # Parked = assigned beyond what the worker can run at once; counted from assignments,
                # not from "started" reports, which arrive late (or never, for short tasks).
                parked = len(worker.assigned) - fit_count(worker.capabilities, request)
                if parked < best_parked:
                    best_prefetch, best_parked = worker, parked
        return best_prefetch

    def assign(self, worker: WorkerState, task: Task) -> None:
        worker.idle_since = None
        worker.assigned[task.task_id] = task
        worker.unstarted += 1
        worker.commit(task.request, 1.0)
        task.worker = worker.identity

    def started(self, worker: WorkerState, task: Task) -> None:
        if task.state is TaskState.ASSIGNED:
            worker.unstarted -= 1

    def unassign(self, worker: WorkerState, task: Task) -> None:
        if worker.assigned.pop(task.task_id, None) is None:
            return
        if not worker.assigned:
            worker.idle_since = time.monotonic()
        if task.state is TaskState.ASSIGNED:
            worker.unstarted -= 1
        if not task.blocked:
            worker.commit(task.request, -1.0)
        task.blocked = False
        task.worker = None

    def steal_victim(self, thief: WorkerState) -> WorkerState | None:
        """A worker with unstarted tasks that ``thief`` can serve, most backlogged first."""
        best: WorkerState | None = None
        for worker in self.workers.values():
            if worker is thief or worker.reclaim_pending or worker.unstarted <= 0:
                continue
            if not takes(thief.capabilities, declared(worker.capabilities)):
                continue
            if best is None or worker.unstarted > best.unstarted:
                best = worker
        return best
