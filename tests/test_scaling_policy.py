"""The scaling policy as the pure function it is: demand, groups and units in, decisions out."""

from __future__ import annotations

from scaler.scaling.model import Demand, GroupView, PolicyMemory, ScalingConfig, UnitView
from scaler.scaling.policy import decide
from scaler.utility.capabilities import fit_count as slots_per_worker
from scaler.utility.capabilities import parse_capabilities

CONFIG = ScalingConfig(idle_timeout=10, stabilization_window=5, max_launch_per_round=20)


def group(name: str, caps: str, units: int = 0, pending: int = 0, **kw: object) -> GroupView:
    base = {"workers_per_unit": 1, "min_units": 0, "max_units": 10, "priority": 0, "cost": 1.0, "failing": ""}
    base.update(kw)
    return GroupView("a", name, caps, units=units, pending=pending, **base)  # type: ignore[arg-type]


def test_slots_per_worker_follows_the_matching_rule() -> None:
    assert slots_per_worker(parse_capabilities("cpu=4"), parse_capabilities("cpu=1")) == 4
    assert slots_per_worker(parse_capabilities("cpu=4,gpu=1"), parse_capabilities("cpu=1,gpu=1")) == 1
    assert slots_per_worker(parse_capabilities("cpu=4"), parse_capabilities("gpu=1")) == 0
    assert slots_per_worker(parse_capabilities("cpu=2"), parse_capabilities("cpu=1,linux")) == 0


def test_unmet_demand_is_bin_packed_onto_the_cheapest_fitting_group() -> None:
    groups = [group("big", "cpu=4", cost=3.0), group("small", "cpu=1", cost=1.0)]
    decisions, _ = decide([Demand("cpu=1", 10)], groups, [], 0.0, CONFIG, PolicyMemory())
    assert [(d.group, d.count) for d in decisions] == [("big", 3)], "cost per task slot: 0.75 < 1.0"


def test_gpu_groups_are_kept_for_gpu_work_and_spill_happens_at_max_units() -> None:
    groups = [group("gpu", "cpu=1,gpu=1", cost=0.5), group("cpu", "cpu=1", max_units=3)]
    decisions, _ = decide([Demand("cpu=1", 5)], groups, [], 0.0, CONFIG, PolicyMemory())
    assert [(d.group, d.count) for d in decisions] == [("cpu", 3), ("gpu", 2)]
    decisions, _ = decide([Demand("cpu=1,gpu=1", 2)], groups, [], 0.0, CONFIG, PolicyMemory())
    assert [(d.group, d.count) for d in decisions] == [("gpu", 2)]


def test_pending_units_count_as_supply_and_failing_groups_are_skipped() -> None:
    groups = [group("a", "cpu=1", units=4, pending=4), group("b", "cpu=1", priority=1)]
    decisions, _ = decide([Demand("cpu=1", 6)], groups, [], 0.0, CONFIG, PolicyMemory())
    assert [(d.group, d.count) for d in decisions] == [("a", 2)]
    groups = [group("a", "cpu=1", failing="CapacityError"), group("b", "cpu=1", priority=1)]
    decisions, _ = decide([Demand("cpu=1", 3)], groups, [], 0.0, CONFIG, PolicyMemory())
    assert [(d.group, d.count) for d in decisions] == [("b", 3)]


def test_upscaling_speed_bounds_a_round() -> None:
    config = ScalingConfig(max_launch_per_round=4)
    decisions, _ = decide([Demand("cpu=1", 100)], [group("a", "cpu=1", max_units=50)], [], 0.0, config, PolicyMemory())
    assert decisions[0].count == 4


def test_scale_down_only_idle_units_after_timeout_and_window_and_above_min() -> None:
    groups = [group("a", "cpu=1", units=3, min_units=1)]
    units = [
        UnitView("a", "a", "u1", True, False, 0.0),
        UnitView("a", "a", "u2", True, False, 5.0),
        UnitView("a", "a", "u3", True, True, None),
    ]
    decisions, _ = decide([], groups, units, 12.0, CONFIG, PolicyMemory())
    assert [d.units for d in decisions] == [("u1",)], "u2 idle too briefly, u3 busy"
    decisions, _ = decide([], groups, units, 30.0, CONFIG, PolicyMemory())
    assert [d.units for d in decisions] == [("u1", "u2")], "never below min_units, never the busy unit"
    decisions, _ = decide([], groups, units, 30.0, CONFIG, PolicyMemory({"a/a": 27.0}))
    assert decisions == [], "no scale-down within the stabilization window after a scale-up"
    decisions, _ = decide([Demand("cpu=1", 1)], groups, units, 30.0, CONFIG, PolicyMemory())
    assert all(d.action == "launch" for d in decisions), "no scale-down while the group could serve waiting work"


def test_min_units_are_kept_up() -> None:
    decisions, memory = decide([], [group("a", "cpu=1", min_units=2)], [], 0.0, CONFIG, PolicyMemory())
    assert [(d.action, d.count) for d in decisions] == [("launch", 2)]
    assert "min_units" in decisions[0].reason and memory.last_scale_up["a/a"] == 0.0


def test_a_group_above_max_units_drains_its_surplus_least_busy_first() -> None:
    groups = [group("a", "cpu=1", units=4, max_units=2)]
    units = [
        UnitView("a", "a", "busy3", True, True, None, running=3),
        UnitView("a", "a", "busy1", True, True, None, running=1),
        UnitView("a", "a", "booting", False, False, None),
        UnitView("a", "a", "busy2", True, True, None, running=2),
    ]
    decisions, _ = decide([Demand("cpu=1", 5)], groups, units, 1.0, CONFIG, PolicyMemory({"a/a": 0.5}))
    assert [(d.action, d.units) for d in decisions] == [("terminate", ("booting", "busy1"))]
    assert "max_units=2" in decisions[0].reason
    draining = [UnitView("a", "a", "gone", True, True, None, draining=True, running=1), *units[:2]]
    decisions, _ = decide([], [group("a", "cpu=1", units=2, max_units=2)], draining, 1.0, CONFIG, PolicyMemory())
    assert decisions == [], "draining units are not counted or chosen again"


def test_spread_bundles_need_a_worker_each_while_packed_ones_share_a_unit() -> None:
    groups = [group("gpu4", "cpu=4,gpu=4")]
    spread = Demand("gpu=1", 4, spread=True, what="placement group bundles")
    decisions, _ = decide([spread], groups, [], 0.0, CONFIG, PolicyMemory())
    assert [(d.group, d.count) for d in decisions] == [("gpu4", 4)]
    assert "4 placement group bundles of gpu=1 waiting, 1 per unit" in decisions[0].reason
    decisions, _ = decide([Demand("gpu=1", 4)], groups, [], 0.0, CONFIG, PolicyMemory())
    assert [(d.group, d.count) for d in decisions] == [("gpu4", 1)]
    two_per_unit = [group("gpu4", "cpu=4,gpu=4", workers_per_unit=2)]
    decisions, _ = decide([spread], two_per_unit, [], 0.0, CONFIG, PolicyMemory())
    assert [(d.group, d.count) for d in decisions] == [("gpu4", 2)], "a unit of two workers holds two spread bundles"
