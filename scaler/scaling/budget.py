"""Per-adapter budgets (``max_cost_per_hour``): what scale-up may still spend in one decision round.

An adapter's spend is the sum, over its groups, of ``cost`` (per unit-hour) times the units it runs
or has pending (requested, booting, launching, running; not those being drained, which are going
away). A launch is cut to what the budget still affords; a group of ``cost = 0`` is
never cut. The book lives for one call of ``decide``: the policy stays a pure function.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from scaler.scaling.model import GroupView

EPSILON = 1e-9  # so that 3 x $0.1/h fits a $0.3/h budget despite float rounding


def spend(groups: Sequence[GroupView]) -> dict[str, float]:
    """Each adapter's cost per hour now: its groups' running and pending units times their cost."""
    out: dict[str, float] = {}
    for group in groups:
        out[group.adapter] = out.get(group.adapter, 0.0) + group.cost * group.units
    return out


@dataclass(frozen=True)
class Held:
    """Launches the budget cut in a round: the adapter, the first group cut, and how many units in all."""

    adapter: str
    group: str
    wanted: int


class BudgetBook:
    """The round's running account: what each budgeted adapter has spent plus what the round planned."""

    def __init__(self, limits: Mapping[str, float], groups: Sequence[GroupView]) -> None:
        self.limits = dict(limits)
        self.spent = spend(groups)
        self.planned: dict[str, float] = {}
        self.held: dict[str, Held] = {}

    def allow(self, group: GroupView, count: int) -> int:
        """How many of ``count`` units of ``group`` the budget affords; charges them, notes the rest."""
        limit = self.limits.get(group.adapter)
        if limit is None or count <= 0 or group.cost <= 0:
            return count
        spent = self.spent.get(group.adapter, 0.0)
        left = limit - spent - self.planned.get(group.adapter, 0.0)
        allowed = max(0, min(count, math.floor((left + EPSILON) / group.cost)))
        self.planned[group.adapter] = self.planned.get(group.adapter, 0.0) + allowed * group.cost
        if allowed < count:
            before = self.held.get(group.adapter)
            wanted = count - allowed + (before.wanted if before else 0)
            self.held[group.adapter] = Held(group.adapter, before.group if before else group.name, wanted)
        return allowed

    def reason(self, held: Held) -> str:
        """Why ``held``: the adapter's spend with this round's launches, against its budget."""
        total = self.spent.get(held.adapter, 0.0) + self.planned.get(held.adapter, 0.0)
        limit = self.limits[held.adapter]
        return f"budget: {held.adapter} at ${total:.2f}/h of ${limit:.2f}/h; {held.wanted} more unit(s) not launched"
