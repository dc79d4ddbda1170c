"""A per-adapter budget (``max_cost_per_hour``) in the pure scaling policy, and what carries it."""

from __future__ import annotations

from pathlib import Path

import pytest

from scaler.config import ConfigError, load_config
from scaler.protocol import messages as m
from scaler.protocol.wire import encode, split_batch
from scaler.scaling.model import Demand, GroupView, PolicyMemory, ScalingConfig, UnitView
from scaler.scaling.policy import decide

CONFIG = ScalingConfig(idle_timeout=10, stabilization_window=5, max_launch_per_round=20)


def group(name: str, units: int = 0, pending: int = 0, adapter: str = "a", **kw: object) -> GroupView:
    base: dict[str, object] = {"capabilities": "cpu=1", "workers_per_unit": 1, "min_units": 0, "max_units": 100}
    base.update({"priority": 0, "cost": 1.0, "failing": ""}, **kw)
    return GroupView(adapter, name, units=units, pending=pending, **base)  # type: ignore[arg-type]


def launched(decisions: list[object]) -> dict[str, int]:
    out: dict[str, int] = {}
    for d in decisions:
        if getattr(d, "action", "") == "launch":
            out[d.group] = out.get(d.group, 0) + d.count  # type: ignore[attr-defined]
    return out


def test_scale_up_stops_at_the_budget_and_says_why_once() -> None:
    demand = [Demand("cpu=1", 50)]
    decisions, memory = decide(demand, [group("cpu")], [], 0.0, CONFIG, PolicyMemory(), {"a": 2.0})
    assert launched(decisions) == {"cpu": 2}
    (hold,) = [d for d in decisions if d.action == "hold"]
    assert hold.reason == "budget: a at $2.00/h of $2.00/h; 18 more unit(s) not launched"
    assert hold.describe() == f"a/cpu: hold 18 ({hold.reason})"
    # Next round: two units pending, the queue as long: nothing launched, and the hold is not said again.
    again, memory = decide(demand, [group("cpu", units=2, pending=2)], [], 1.0, CONFIG, memory, {"a": 2.0})
    assert again == [] and memory.budget_held == frozenset({"a"})
    # Without a budget the same demand launches 20 (max_launch_per_round): the budget is what cut it.
    free, _ = decide(demand, [group("cpu")], [], 0.0, CONFIG, PolicyMemory())
    assert launched(free) == {"cpu": 20}


def test_the_budget_counts_every_group_of_its_adapter_and_spills_to_a_cheaper_unit() -> None:
    groups = [group("big", units=1, cost=1.5, workers_per_unit=4), group("small", cost=0.25), group("b", adapter="b")]
    demand = [Demand("cpu=1", 40)]
    decisions, _ = decide(demand, groups, [], 0.0, CONFIG, PolicyMemory(), {"a": 2.0})
    # $1.5/h spent; no second big unit fits the $0.5/h left, two small ones do; adapter b has no budget.
    assert launched(decisions) == {"small": 2, "b": 20}
    assert [d.adapter for d in decisions if d.action == "hold"] == ["a"]


def test_min_units_wait_for_the_budget_too_and_a_zero_cost_group_is_never_cut() -> None:
    groups = [group("kept", min_units=3), group("free", cost=0.0)]
    decisions, _ = decide([Demand("cpu=1", 30)], groups, [], 0.0, CONFIG, PolicyMemory(), {"a": 1.0})
    assert launched(decisions)["kept"] == 1
    assert launched(decisions)["free"] == 20


def test_scale_down_is_not_held_by_a_budget() -> None:
    idle = [UnitView("a", "cpu", f"u{i}", True, False, 0.0) for i in range(3)]
    decisions, _ = decide([], [group("cpu", units=3)], idle, 100.0, CONFIG, PolicyMemory(), {"a": 1.0})
    assert [d.action for d in decisions] == ["terminate"] and len(decisions[0].units) == 3


def test_the_budget_travels_in_adapter_state_and_an_old_peers_state_has_none() -> None:
    state = m.AdapterState("a", [m.GroupSpec("cpu", "cpu=1")], [], max_cost_per_hour=2.5)
    ((back, _),) = split_batch([encode([state])])
    assert isinstance(back, m.AdapterState) and back.max_cost_per_hour == 2.5
    ((old, _),) = split_batch([encode([m.AdapterState("a", [m.GroupSpec("cpu", "cpu=1")], [])])])
    assert isinstance(old, m.AdapterState) and old.max_cost_per_hour is None


BUDGETED = """
[[adapter]]
provider = "local"
max_cost_per_hour = {budget}
[[adapter.group]]
name = "cpu"
min_units = 2
max_units = 4
cost = 1.5
"""


def test_the_config_bounds_the_budget(tmp_path: Path) -> None:
    path = tmp_path / "budget.toml"
    path.write_text(BUDGETED.format(budget=3))
    assert load_config(path).adapter[0].max_cost_per_hour == 3.0
    path.write_text(BUDGETED.format(budget=-1))
    with pytest.raises(ConfigError, match=r"budget.toml: \$\.adapter\[0\]\.max_cost_per_hour: Expected `float` >= 0"):
        load_config(path)
    path.write_text(BUDGETED.format(budget=2))
    with pytest.raises(ConfigError, match=r"max_cost_per_hour: 2 is less than what min_units cost \(3 per hour\)"):
        load_config(path)


def test_the_simulator_honours_the_budget(tmp_path: Path) -> None:
    from scaler.scaling.simulate import TraceTask, simulate

    path = tmp_path / "sim.toml"
    path.write_text("""
[[adapter]]
provider = "fake"
max_cost_per_hour = 1.5
[[adapter.group]]
name = "cpu"
max_units = 20
cost = 0.5
""")
    result = simulate(load_config(path), [TraceTask(0.0, 1.0, "cpu=1")] * 60, boot_seconds=1)
    assert result.peak_workers == 3, "three $0.5/h units under $1.5/h"
    assert [d.action for _, d in result.decisions].count("hold") == 1 and result.reversals == 0


def test_scaler_top_shows_each_adapters_cost_against_its_budget() -> None:
    from rich.console import Console

    from scaler.top.main import cost_by_adapter, render

    rows: list[dict[str, int | float | str]] = [
        {"adapter": "ec2", "group": "cpu", "capabilities": "cpu=4", "min": 0, "max": 9, "running": 3},
        {"adapter": "ec2", "group": "gpu", "capabilities": "gpu=1", "min": 0, "max": 2, "running": 1},
        {"adapter": "local", "group": "cpu", "capabilities": "cpu=1", "min": 0, "max": 2},
    ]
    rows[0].update(cost_per_hour=0.6, max_cost_per_hour=2.0)
    rows[1].update(cost_per_hour=1.0, max_cost_per_hour=2.0)
    rows[2].update(cost_per_hour=0.0, max_cost_per_hour="")
    assert cost_by_adapter(rows) == {"ec2": (1.6, 2.0), "local": (0.0, None)}
    console = Console(width=200, record=True)
    console.print(render(m.StatusReply({}, adapters=rows), "tcp://127.0.0.1:1"))
    text = console.export_text()
    assert "cost per hour by adapter" in text and "1.60" in text and "2.00" in text
