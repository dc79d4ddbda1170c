"""Where a placement group's bundles go: pure planning over the workers as they are now.

``plan`` places a group's unplaced bundles greedily, largest first, by its strategy (STRICT_PACK on
one worker, PACK on few, STRICT_SPREAD each on its own worker, SPREAD on different ones where it
can), on workers that are not draining, not under an interruption notice and not an actor's own.
``Room`` answers cheaply whether a group surely cannot fit, so that a scheduling pass passes over
a pending group that never fits without planning it. ``scheduler/bundles.py`` holds the groups and
applies the plans.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from scaler.scheduler.workers import WorkerState
from scaler.utility.capabilities import DEDICATED_PREFIX, Capabilities


@dataclass(slots=True, eq=False)
class Group:
    pg_id: str
    client: bytes
    name: str
    strategy: str
    bundles: list[Capabilities]
    detached: bool
    placed: list[WorkerState | None] = field(default_factory=list)
    created: bool = False
    needs: tuple[Capabilities, dict[str, float], int] | None = None  # its unplaced bundles: Room.may_hold

    @property
    def state(self) -> str:
        if all(w is not None for w in self.placed):
            return "CREATED"
        return "RESCHEDULING" if self.created else "PENDING"


def _free(worker: WorkerState) -> dict[str, float]:
    return {name: worker.total[name] - worker.committed.get(name, 0.0) for name in worker.total}


def _take(free: dict[str, float], bundle: Capabilities) -> None:
    for name, amount in bundle.quantities:
        free[name] = free.get(name, 0.0) - amount


def _spare(free: dict[str, float], bundle: Capabilities) -> float:
    """What a worker has left after taking ``bundle``, in its bundle's own terms: best fit first."""
    return sum(free.get(name, 0.0) - amount for name, amount in bundle.quantities)


def sum_of(bundles: Iterable[Capabilities]) -> Capabilities:
    total: dict[str, float] = {}
    labels: set[str] = set()
    for bundle in bundles:
        labels |= bundle.labels
        for name, amount in bundle.quantities:
            total[name] = total.get(name, 0.0) + amount
    return Capabilities(tuple(sorted(total.items())), frozenset(labels))


def candidates_of(workers: Iterable[WorkerState]) -> tuple[list[WorkerState], dict[bytes, dict[str, float]]]:
    """The workers a bundle may go on (not leaving, not an actor's), and what each has free."""
    candidates = [
        w
        for w in workers
        if not w.draining and not w.interrupted and not any(n.startswith(DEDICATED_PREFIX) for n in w.total)
    ]
    return candidates, {w.identity: _free(w) for w in candidates}


def plan(group: Group, workers: Iterable[WorkerState]) -> tuple[dict[int, WorkerState], list[int]]:
    """Where the group's unplaced bundles go on ``workers`` as they are now: the placements found, and
    the bundles left over (the group is placed only when none is). Greedy, largest bundles first."""
    candidates, free = candidates_of(workers)
    return plan_on(group, candidates, free)


def plan_on(
    group: Group, candidates: list[WorkerState], free: dict[bytes, dict[str, float]], whole: bool = False
) -> tuple[dict[int, WorkerState], list[int]]:
    """``plan`` on ``candidates`` with ``free`` (taken from as bundles are placed); with ``whole``, it
    stops at the first bundle left over (enough for all or nothing)."""
    todo = sorted(
        (i for i, w in enumerate(group.placed) if w is None),
        key=lambda i: -sum(a for _, a in group.bundles[i].quantities),
    )
    used = {w.identity for w in group.placed if w is not None}
    found: dict[int, WorkerState] = {}
    if group.strategy == "STRICT_PACK":
        total = sum_of(group.bundles[i] for i in todo)
        fitting = [w for w in candidates if w.capabilities.serves(total, free[w.identity])]
        if used:
            fitting = [w for w in fitting if w.identity in used]
        if not fitting:
            return {}, todo
        best = min(fitting, key=lambda w: _spare(free[w.identity], total))
        return {i: best for i in todo}, []
    left: list[int] = []
    for index in todo:
        bundle = group.bundles[index]
        fitting = [w for w in candidates if w.capabilities.serves(bundle, free[w.identity])]
        if group.strategy == "STRICT_SPREAD":
            fitting = [w for w in fitting if w.identity not in used]
        if not fitting:
            left.append(index)
            if whole:
                return found, left
            continue
        prefer_new = group.strategy in ("SPREAD", "STRICT_SPREAD")
        best = min(
            fitting,
            key=lambda w: ((w.identity in used) == prefer_new, _spare(free[w.identity], bundle)),
        )
        found[index] = best
        _take(free[best.identity], bundle)
        used.add(best.identity)
    return found, left


@dataclass(slots=True)
class Room:
    """What a scheduling pass's candidate workers have free, summed up: per name the most on any one
    worker and all of them together, their labels, and how many there are."""

    most: dict[str, float]
    total: dict[str, float]
    labels: frozenset[str]
    workers: int

    @staticmethod
    def of(candidates: list[WorkerState], free: dict[bytes, dict[str, float]]) -> Room:
        most: dict[str, float] = {}
        total: dict[str, float] = {}
        for have in free.values():
            for name, amount in have.items():
                most[name] = max(most.get(name, 0.0), amount)
                total[name] = total.get(name, 0.0) + max(amount, 0.0)  # below 0: tasks parked beyond it
        labels = frozenset().union(*(w.capabilities.labels for w in candidates))
        return Room(most, total, labels, len(candidates))

    def may_hold(self, group: Group) -> bool:
        """False if the group's unplaced bundles surely do not fit now (a cheap test before ``plan``)."""
        if group.needs is None:
            unplaced = [b for b, w in zip(group.bundles, group.placed, strict=True) if w is None]
            largest: dict[str, float] = {}
            for bundle in unplaced:
                for name, amount in bundle.quantities:
                    largest[name] = max(largest.get(name, 0.0), amount)
            group.needs = (sum_of(unplaced), largest, len(unplaced))
        summed, largest, count = group.needs
        if not summed.labels <= self.labels:
            return False
        if group.strategy == "STRICT_SPREAD" and count > self.workers:
            return False
        one = summed.as_dict() if group.strategy == "STRICT_PACK" else largest
        eps = 1e-9 * max(count, 1)  # as Capabilities.serves allows, bundle by bundle
        return all(self.most.get(n, 0.0) + eps >= a for n, a in one.items()) and all(
            self.total.get(n, 0.0) + eps >= a for n, a in summed.quantities
        )
