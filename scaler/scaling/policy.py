"""The scaling policy (DESIGN §5): one pure function, used live by the scheduler and by the simulator.

For every capability set with waiting tasks, unmet demand is what pending units will not absorb;
it is bin-packed onto the unit shapes of the groups that can serve it, cheapest first (a group
with GPUs is used for non-GPU work only after groups without), filled in priority order with
spill-over when a group is at ``max_units`` or failing, at most ``max_launch_per_round`` units per
group per round. Scale-down removes only units whose workers are all idle for ``idle_timeout``,
never below ``min_units``, never while the group could serve waiting work, and not within the
``stabilization_window`` after that group scaled up. The one exception is a group above
``max_units`` (adopted orphans, a lowered limit): its surplus is drained at once, units not yet
connected first, then the least busy; the scheduler lets their running tasks finish (up to
``drain_timeout``) before the terminate goes out.

An adapter with a budget (``max_cost_per_hour``, in ``budgets``) never has scale-up take its spend
(``cost`` x units running or pending, see ``scaler.scaling.budget``) above it: launches, ``min_units``
ones included, are cut to what it affords, and the rest spills to the next group that can serve
the work (one of the same adapter whose unit is cheaper still fits, another adapter's has its own
budget). A cut is one ``hold`` decision with its reason, given once while the adapter stays held.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from scaler.scaling.budget import BudgetBook
from scaler.scaling.model import Decision, Demand, GroupView, PolicyMemory, ScalingConfig, UnitView
from scaler.utility.capabilities import Capabilities, fit_count, parse_capabilities


def _key(group: GroupView) -> str:
    return f"{group.adapter}/{group.name}"


def _preference(group: GroupView, request: Capabilities, per_unit: int) -> tuple[int, int, float]:
    asks_gpu = any(name == "gpu" for name, _ in request.quantities)
    has_gpu = any(name == "gpu" for name, _ in parse_capabilities(group.capabilities).quantities)
    return (group.priority, int(has_gpu and not asks_gpu), group.cost / max(per_unit, 1))


def _interrupted(group: GroupView) -> str:
    """Why a group is short although its units are still there: some are about to be reclaimed."""
    if not group.interrupted:
        return ""
    return f"; {group.interrupted} unit(s) under a spot interruption notice no longer count"


def decide(
    demand: Sequence[Demand],
    groups: Sequence[GroupView],
    units: Sequence[UnitView],
    now: float,
    config: ScalingConfig,
    memory: PolicyMemory,
    budgets: Mapping[str, float] | None = None,
) -> tuple[list[Decision], PolicyMemory]:
    """The round's decisions and the memory for the next; ``budgets`` maps adapter -> max $/h."""
    decisions: list[Decision] = []
    book = BudgetBook(budgets or {}, groups)
    planned: dict[str, int] = {_key(g): 0 for g in groups}
    last_up = dict(memory.last_scale_up)
    served_demand: dict[str, int] = {_key(g): 0 for g in groups}

    for item in demand:
        if item.waiting <= 0:
            continue
        request = parse_capabilities(item.capabilities)
        options = []
        for group in groups:
            fits = fit_count(parse_capabilities(group.capabilities), request)
            per_unit = (min(fits, 1) if item.spread else fits) * group.workers_per_unit
            if per_unit > 0:
                options.append((group, per_unit))
                served_demand[_key(group)] += item.waiting
        options.sort(key=lambda option: _preference(option[0], request, option[1]))
        unmet = item.waiting - sum(group.pending * per_unit for group, per_unit in options)
        for group, per_unit in options:
            if unmet <= 0:
                break
            key = _key(group)
            if group.failing:
                continue
            room = group.max_units - group.units - planned[key]
            count = min(math.ceil(unmet / per_unit), room, config.max_launch_per_round - planned[key])
            count = book.allow(group, count)
            if count <= 0:
                continue
            planned[key] += count
            unmet -= count * per_unit
            reason = f"{item.waiting} {item.what} of {item.capabilities or 'any'} waiting, {per_unit} per unit"
            reason += _interrupted(group)
            decisions.append(Decision("launch", group.adapter, group.name, reason, count=count))
            last_up[key] = now

    for group in groups:
        key = _key(group)
        short = book.allow(group, group.min_units - group.units - planned[key]) if not group.failing else 0
        if short > 0:
            reason = f"below min_units={group.min_units}{_interrupted(group)}"
            decisions.append(Decision("launch", group.adapter, group.name, reason, short))
            planned[key] += short
            last_up[key] = now
        excess = group.units - group.max_units
        if excess > 0:
            mine = [u for u in units if u.adapter == group.adapter and u.group == group.name and not u.draining]
            mine.sort(key=lambda u: (u.connected, u.running, -(u.idle_since or 0.0)))
            chosen = tuple(u.unit_id for u in mine[:excess])
            reason = f"{group.units} units, above max_units={group.max_units}"
            decisions.append(Decision("terminate", group.adapter, group.name, reason, units=chosen))
            continue
        if served_demand[key] > 0 or planned[key] > 0:
            continue
        if now - last_up.get(key, float("-inf")) < config.stabilization_window:
            continue
        idle = sorted(
            (
                u
                for u in units
                if u.adapter == group.adapter
                and u.group == group.name
                and u.connected
                and not u.busy
                and not u.draining
                and u.idle_since is not None
                and now - u.idle_since >= config.idle_timeout
            ),
            key=lambda u: u.idle_since or 0.0,
        )
        removable = min(len(idle), group.units - group.min_units)
        if removable > 0:
            chosen = tuple(u.unit_id for u in idle[:removable])
            reason = f"idle for {config.idle_timeout:g}s+ and no waiting work it can serve"
            decisions.append(Decision("terminate", group.adapter, group.name, reason, units=chosen))
    for held in book.held.values():
        if held.adapter not in memory.budget_held:
            decisions.append(Decision("hold", held.adapter, held.group, book.reason(held), count=held.wanted))
    return decisions, PolicyMemory(last_up, frozenset(book.held))
