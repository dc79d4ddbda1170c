"""The values the scaling policy reads and returns; all frozen, no sockets, no clocks."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class ScalingConfig:
    idle_timeout: float = 10.0  # a unit idle this long may be removed
    stabilization_window: float = 5.0  # no scale-down this soon after a scale-up
    max_launch_per_round: int = 20  # upscaling speed: units per group per decision round
    interval: float = 0.5  # seconds between decision rounds
    drain_timeout: float = 300.0  # a draining unit's running tasks get this long before it is terminated


@dataclass(frozen=True)
class Demand:
    """Tasks of one capability set waiting for capacity (queued, or parked unstarted on a busy worker)."""

    capabilities: str
    waiting: int
    spread: bool = False  # each waiting item needs a worker of its own (a spread placement group's bundles)
    what: str = "tasks"


@dataclass(frozen=True)
class GroupView:
    adapter: str
    name: str
    capabilities: str
    workers_per_unit: int
    min_units: int
    max_units: int
    priority: int
    cost: float
    units: int  # requested, booting or running (not draining/terminated/failed)
    pending: int  # of those, not yet connected
    failing: str = ""
    interrupted: int = 0  # units under a spot interruption notice (draining, so not in ``units``)


@dataclass(frozen=True)
class UnitView:
    adapter: str
    group: str
    unit_id: str
    connected: bool
    busy: bool
    idle_since: float | None
    draining: bool = False
    running: int = 0  # tasks assigned to its workers


@dataclass(frozen=True)
class Decision:
    action: str  # launch | terminate | hold (a launch the budget cut: logged, nothing done)
    adapter: str
    group: str
    reason: str
    count: int = 0
    units: tuple[str, ...] = ()

    def describe(self) -> str:
        if self.action == "hold":
            what = f"hold {self.count}"
        elif self.action == "launch":
            what = f"launch {self.count}"
        else:
            what = f"terminate {', '.join(self.units)}"
        return f"{self.adapter}/{self.group}: {what} ({self.reason})"


@dataclass(frozen=True)
class PolicyMemory:
    last_scale_up: dict[str, float] = field(default_factory=dict)  # group key -> time
    budget_held: frozenset[str] = frozenset()  # adapters whose launches the budget cut last round
