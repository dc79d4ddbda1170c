"""Placement groups in the scheduler: bundles of resources reserved together, all or nothing, on
workers, and the requests of the tasks that run inside them.

A placement group is a list of bundles (capability requests) and a strategy. It stays *pending*
until every bundle fits at once; then each bundle is reserved on one worker: the bundle's
quantities move, for as long as the group lives, from the worker's own names to the group's,
``pg.<id>.<name>`` (its bundles of the group, summed) and ``pg.<id>.<i>.<name>`` (bundle i), each
with a ``slot`` quantity so that a task asking for nothing still lands in a bundle (so no bundle
may name ``slot`` or ``pg.*``: intake refuses it). A task
submitted into a group asks for those names instead of the real ones (``request_for``; a task for
bundle i asks for both, as in Ray), so it runs inside the reservation and nothing outside the
group takes it; its worker is sent the task's real request.

Strategies, a worker being a node: STRICT_PACK puts every bundle on one worker; PACK prefers few
workers; STRICT_SPREAD puts each bundle on a different worker; SPREAD prefers different workers.
A pending group is demand for the scaling policy (``demand``): STRICT_PACK is one unit holding the
bundles' sum, SPREAD and STRICT_SPREAD one worker per bundle, PACK bundles bin-packed like tasks.
A group ends with the client that made it unless detached (made from inside a task, with the
client that submitted the task: its job's); a lost worker's bundles go back to pending and the
group is placed again (RESCHEDULING); removing a group cancels its tasks.
"""

from __future__ import annotations

import itertools
import logging
import re
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING

from scaler.protocol import messages as m
from scaler.scaling.model import Demand
from scaler.scheduler.cancels import cancel_tasks
from scaler.scheduler.placing import Group, Room, candidates_of, plan, plan_on, sum_of
from scaler.scheduler.tasks import TERMINAL
from scaler.scheduler.workers import WorkerState
from scaler.utility.capabilities import PG_PREFIX, Capabilities, format_capabilities

if TYPE_CHECKING:
    from scaler.scheduler.engine import Engine

log = logging.getLogger(__name__)
STRATEGIES = ("PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD")
PG_ID = re.compile(r"^[0-9a-f]{8,64}$")
MAX_BUNDLES = 1_000
SLOT = "slot"
SLOTS = 1_000_000.0  # tasks one bundle holds at once, whatever they ask for
MAX_GROUPS = 1_000  # placement groups one job may hold at once
DEMAND_GROUPS = 64  # pending groups a scaling round plans for, oldest first (the others wait their turn)
RETRY = 0.05  # seconds between tries to place pending groups while nothing new happened


class BundleError(ValueError):
    """A placement request that cannot be served; the text says which group or bundle and why."""


def _wildcard(pg_id: str, name: str) -> str:
    return f"{PG_PREFIX}{pg_id}.{name}"


def _indexed(pg_id: str, index: int, name: str) -> str:
    return f"{PG_PREFIX}{pg_id}.{index}.{name}"


_BUNDLE_NAME = re.compile(r"^[0-9]+\.")  # after ``pg.<id>.``: one bundle's own quantity (``_indexed``)


def reserved_as_own(caps: Capabilities) -> Capabilities:
    """A worker's capabilities with what groups reserve on it counted back in its own names: a group's
    ``pg.<id>.<name>`` (its bundles there, summed) is ``name``'s; its slots and each bundle's own
    ``pg.<id>.<i>.<name>`` (counted in that sum) are left out."""
    out: dict[str, float] = {}
    for name, amount in caps.quantities:
        if name.startswith(PG_PREFIX):
            _, _, rest = name[len(PG_PREFIX) :].partition(".")
            if rest == SLOT or _BUNDLE_NAME.match(rest):
                continue
            name = rest
        out[name] = out.get(name, 0.0) + amount
    return Capabilities(tuple(sorted(out.items())), caps.labels)


class Bundles:
    """Every placement group this scheduler holds, and the bundles reserved on each worker."""

    def __init__(self) -> None:
        self.groups: dict[str, Group] = {}
        self.pending: dict[str, Group] = {}
        self.tried = 0.0  # when pending groups were last tried: at most every RETRY seconds, but at once on news

    def news(self) -> None:
        """Something may let a pending group fit now (a worker joined, a group was made or removed)."""
        self.tried = 0.0

    def reserve(self, engine: Engine, client: bytes, msg: m.ReserveBundles, bundles: list[Capabilities]) -> None:
        """Record a new group (``msg`` checked at intake) and try to place it at the next scheduling pass."""
        if msg.pg_id in self.groups:
            raise BundleError(f"placement group {msg.pg_id} already exists")
        held = sum(1 for g in self.groups.values() if g.client == client)
        if held >= MAX_GROUPS:
            raise BundleError(f"the job holds {held} placement groups, the most one may (remove some first)")
        group = Group(msg.pg_id, client, msg.name, msg.strategy, bundles, msg.detached, [None] * len(bundles))
        self.groups[group.pg_id] = group
        self.pending[group.pg_id] = group
        self.news()
        engine.dirty = True

    def request_for(self, pg_id: str, index: int, request: Capabilities) -> Capabilities:
        """What a task asking for ``request`` inside bundle ``index`` (-1: any) of the group asks the
        workers for; ``BundleError`` if the group is unknown or no bundle can ever hold the request.
        With no group, ``request`` itself, unless it names a group's quantities (only its tasks may)."""
        if not pg_id:
            if any(name.startswith(PG_PREFIX) for name, _ in request.quantities):
                raise BundleError(f"{PG_PREFIX}* quantities are placement groups' own: ask with placement= instead")
            return request
        group = self.groups.get(pg_id)
        if group is None:
            raise BundleError(f"placement group {pg_id} does not exist (never made, or removed)")
        if not -1 <= index < len(group.bundles):
            raise BundleError(f"placement group {pg_id} has {len(group.bundles)} bundles; there is no bundle {index}")
        targets = group.bundles if index < 0 else [group.bundles[index]]
        if not any(b.serves(Capabilities(request.quantities, frozenset())) for b in targets):
            where = "any bundle" if index < 0 else f"bundle {index}"
            have = "; ".join(format_capabilities(b) or "nothing" for b in targets)
            raise BundleError(
                f"the request {format_capabilities(request) or 'nothing'} does not fit {where} of placement group "
                f"{pg_id} ({have})"
            )
        asked: dict[str, float] = {_wildcard(pg_id, SLOT): 1.0}
        if index >= 0:
            asked[_indexed(pg_id, index, SLOT)] = 1.0
        for name, amount in request.quantities:
            if amount > 0:
                asked[_wildcard(pg_id, name)] = amount
                if index >= 0:
                    asked[_indexed(pg_id, index, name)] = amount
        return Capabilities(tuple(sorted(asked.items())), request.labels)

    def place(self, engine: Engine) -> None:
        """Reserve every pending group that now fits, whole, in the order they were made. Tried at most
        every RETRY seconds (the server's periodic check tries again) unless there is ``news``; a group
        that surely does not fit is passed over cheaply (``Room``)."""
        now = time.monotonic()
        if now - self.tried < RETRY:
            return
        self.tried = now
        placed_any = False
        candidates, free = candidates_of(engine.pool.workers.values())
        room = Room.of(candidates, free)
        for group in list(self.pending.values()):
            if not room.may_hold(group):
                continue
            found, left = plan_on(group, candidates, {k: dict(v) for k, v in free.items()}, whole=True)
            if left:
                continue
            for index, worker in found.items():
                self._hold(group, index, worker)
            group.created = True
            group.needs = None
            del self.pending[group.pg_id]
            placed_any = True
            candidates, free = candidates_of(engine.pool.workers.values())
            room = Room.of(candidates, free)
        if placed_any:
            engine.pool.changed()

    def _hold(self, group: Group, index: int, worker: WorkerState) -> None:
        bundle = group.bundles[index]
        group.placed[index] = worker
        total = worker.total
        for name, amount in bundle.quantities:  # moved from the worker's own to the group's names
            total[name] = total.get(name, 0.0) - amount
        own = ((SLOT, SLOTS), *bundle.quantities)
        for name, amount in own:
            key = _wildcard(group.pg_id, name)
            total[key] = total.get(key, 0.0) + amount
            total[_indexed(group.pg_id, index, name)] = amount
        worker.capabilities = Capabilities(tuple(sorted(total.items())), worker.capabilities.labels)
        worker.bundles += 1

    def _let_go(self, group: Group, index: int, worker: WorkerState) -> None:
        bundle = group.bundles[index]
        group.placed[index] = None
        total, committed = worker.total, worker.committed
        for name, amount in bundle.quantities:
            total[name] = total.get(name, 0.0) + amount
        for name, amount in ((SLOT, SLOTS), *bundle.quantities):
            key = _wildcard(group.pg_id, name)
            total[key] = total.get(key, 0.0) - amount
            if total[key] <= 1e-9:
                del total[key]
                committed.pop(key, None)
            total.pop(_indexed(group.pg_id, index, name), None)
            committed.pop(_indexed(group.pg_id, index, name), None)
        worker.capabilities = Capabilities(tuple(sorted(total.items())), worker.capabilities.labels)
        worker.bundles -= 1

    def remove(self, engine: Engine, pg_id: str, why: str) -> None:
        """End a group: its reservations are let go and its unfinished tasks cancelled (Ray kills them)."""
        group = self.groups.pop(pg_id, None)
        if group is None:
            return
        self.pending.pop(pg_id, None)
        for index, worker in enumerate(group.placed):
            if worker is not None:
                self._let_go(group, index, worker)
        doomed = [t for t in engine.tasks.values() if t.placement == pg_id and t.state not in TERMINAL]
        for task in doomed:
            cancel_tasks(engine, task.client, [task.task_id], force=True, recursive=False)
        engine.pool.changed()
        self.news()
        engine.dirty = True
        log.info("placement group %s removed (%s): %d unfinished task(s) cancelled", pg_id, why, len(doomed))

    @staticmethod
    def job_of(engine: Engine, client: bytes, parent: str) -> bytes:
        """Whose a group is that ``client`` makes or removes: with ``parent`` (the task whose code
        sends it, unfinished), the client that submitted that task, so that a group made or removed
        by a job's tasks and actors is the job's, as in Ray; else ``client`` itself."""
        task = engine.tasks.get(parent) if parent else None
        if task is None or task.state in TERMINAL or task.client not in engine.clients:
            return client
        return task.client

    def free(self, engine: Engine, client: bytes, pg_id: str) -> None:
        """``client`` removes a group: its own, or a detached one whose maker is gone."""
        group = self.groups.get(pg_id)
        if group is None:
            return
        if group.client != client and group.client in engine.clients:
            return
        self.remove(engine, pg_id, "removed by its owner" if group.client == client else "removed")

    def client_lost(self, engine: Engine, client: bytes) -> None:
        for group in [g for g in self.groups.values() if g.client == client and not g.detached]:
            self.remove(engine, group.pg_id, "its client left")

    def worker_lost(self, worker: WorkerState) -> None:
        """A worker went: the bundles it held wait to be placed again (their tasks are re-queued)."""
        if not worker.bundles:
            return
        for group in self.groups.values():
            for index, holder in enumerate(group.placed):
                if holder is worker:
                    group.placed[index] = None
                    group.needs = None
                    self.pending[group.pg_id] = group

    def demand(self, workers: Iterable[WorkerState]) -> list[Demand]:
        """What pending groups ask the scaling policy for: the bundles the present workers cannot take."""
        present = list(workers)
        counts: dict[tuple[str, bool], int] = {}
        for group in itertools.islice(self.pending.values(), DEMAND_GROUPS):  # the oldest: a bounded round
            _, left = plan(group, present)
            if not left:
                continue
            if group.strategy == "STRICT_PACK":
                asks = [(format_capabilities(sum_of(group.bundles[i] for i in left)), False)]
            else:
                spread = group.strategy in ("SPREAD", "STRICT_SPREAD")
                asks = [(format_capabilities(group.bundles[i]), spread) for i in left]
            for key in asks:
                counts[key] = counts.get(key, 0) + 1
        return [Demand(caps, count, spread, "placement group bundles") for (caps, spread), count in counts.items()]

    def info(self) -> list[m.PlacementGroupInfo]:
        return [
            m.PlacementGroupInfo(
                g.pg_id,
                g.name,
                g.strategy,
                g.state,
                [format_capabilities(b) for b in g.bundles],
                [w.name if w is not None else "" for w in g.placed],
                g.detached,
            )
            for g in self.groups.values()
        ]
