"""The runner's view of its units: one literal table of legal transitions, a cause on every move,
and a short history of moves per unit (reported to the scheduler, shown by ``scaler_top``).

Nothing changes a unit's state but ``UnitTable.move``, which refuses a move the table does not list.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from dataclasses import dataclass, field

from scaler.adapters.provider import UnitState

log = logging.getLogger(__name__)
U = UnitState
TRANSITIONS: dict[UnitState, frozenset[UnitState]] = {
    U.REQUESTED: frozenset({U.BOOTING, U.RUNNING, U.DRAINING, U.TERMINATING, U.TERMINATED, U.FAILED}),
    U.BOOTING: frozenset({U.RUNNING, U.DRAINING, U.TERMINATING, U.TERMINATED, U.FAILED}),
    U.RUNNING: frozenset({U.DRAINING, U.TERMINATING, U.TERMINATED, U.FAILED}),
    U.DRAINING: frozenset({U.TERMINATING, U.TERMINATED, U.FAILED}),
    U.TERMINATING: frozenset({U.TERMINATED, U.FAILED, U.TERMINATION_FAILED}),
    U.TERMINATION_FAILED: frozenset({U.TERMINATING, U.TERMINATED, U.FAILED}),
    U.TERMINATED: frozenset(),
    U.FAILED: frozenset(),
}
ACTIVE = frozenset(s for s, moves in TRANSITIONS.items() if moves)  # may still exist at the provider
SUPPLY = frozenset({U.REQUESTED, U.BOOTING, U.RUNNING})  # will serve tasks
HISTORY = 10


class IllegalUnitTransition(RuntimeError):
    pass


@dataclass(frozen=True)
class Move:
    state: UnitState
    cause: str
    at: float  # wall time


@dataclass
class TrackedUnit:
    unit_id: str
    group: str
    state: UnitState
    since: float  # monotonic time of the last move
    created: float
    request_id: str
    cause: str
    added: float = 0.0  # monotonic time the runner started tracking it
    history: deque[Move] = field(default_factory=lambda: deque(maxlen=HISTORY))


class UnitTable:
    def __init__(self) -> None:
        self.units: dict[str, TrackedUnit] = {}

    def add(self, unit_id: str, group: str, state: UnitState, request_id: str, cause: str) -> TrackedUnit:
        now = time.monotonic()
        unit = TrackedUnit(unit_id, group, state, now, time.time(), request_id, cause, now)
        unit.history.append(Move(state, cause, time.time()))
        self.units[unit_id] = unit
        log.info("unit %s (%s) %s: %s", unit_id, group, state.value, cause)
        return unit

    def move(self, unit_id: str, state: UnitState, cause: str) -> bool:
        unit = self.units.get(unit_id)
        if unit is None or unit.state is state:
            return False
        if state not in TRANSITIONS[unit.state]:
            raise IllegalUnitTransition(f"unit {unit_id}: {unit.state.value} -> {state.value} is not allowed")
        unit.state, unit.since, unit.cause = state, time.monotonic(), cause
        unit.history.append(Move(state, cause, time.time()))
        log.info("unit %s (%s) %s: %s", unit_id, unit.group, state.value, cause)
        return True

    def can_move(self, unit_id: str, state: UnitState) -> bool:
        unit = self.units.get(unit_id)
        return unit is not None and state in TRANSITIONS[unit.state]

    def active(self) -> list[TrackedUnit]:
        return [u for u in self.units.values() if u.state in ACTIVE]

    def forget_ended(self, keep_seconds: float = 300.0) -> None:
        now = time.monotonic()
        for unit_id in [
            u.unit_id for u in self.units.values() if u.state not in ACTIVE and now - u.since > keep_seconds
        ]:
            del self.units[unit_id]
