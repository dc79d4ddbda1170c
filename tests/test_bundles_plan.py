"""Where placement groups' bundles go, as the pure planning it is: workers and a group in, placements
(and what is left) out; and what a pending group asks the scaling policy for."""

from __future__ import annotations

from scaler.scaling.model import Demand
from scaler.scheduler.bundles import Bundles
from scaler.scheduler.placing import Group, plan
from scaler.scheduler.workers import WorkerState
from scaler.utility.capabilities import parse_capabilities


def worker(name: str, caps: str, draining: bool = False) -> WorkerState:
    parsed = parse_capabilities(caps)
    return WorkerState(name.encode(), name, parsed, parsed.as_dict(), {}, draining=draining)


def group(strategy: str, *bundles: str) -> Group:
    caps = [parse_capabilities(b) for b in bundles]
    return Group("ab" * 8, b"client", "", strategy, caps, False, [None] * len(caps))


def placed(found: dict[int, WorkerState]) -> dict[int, str]:
    return {index: w.name for index, w in sorted(found.items())}


def test_strict_pack_needs_one_worker_for_all_bundles() -> None:
    workers = [worker("a", "cpu=1"), worker("b", "cpu=3")]
    found, left = plan(group("STRICT_PACK", "cpu=1", "cpu=2"), workers)
    assert placed(found) == {0: "b", 1: "b"} and left == []
    found, left = plan(group("STRICT_PACK", "cpu=2", "cpu=2"), workers)
    assert found == {} and sorted(left) == [0, 1]


def test_pack_fills_few_workers_and_spread_many() -> None:
    workers = [worker("a", "cpu=4"), worker("b", "cpu=4")]
    found, _ = plan(group("PACK", "cpu=1", "cpu=1", "cpu=1"), workers)
    assert len(set(placed(found).values())) == 1
    found, _ = plan(group("SPREAD", "cpu=1", "cpu=1", "cpu=1"), workers)
    assert set(placed(found).values()) == {"a", "b"}, "SPREAD reuses a worker only when it must"


def test_strict_spread_never_shares_a_worker_and_skips_draining_ones() -> None:
    workers = [worker("a", "cpu=4"), worker("b", "cpu=4"), worker("c", "cpu=4", draining=True)]
    found, left = plan(group("STRICT_SPREAD", "cpu=1", "cpu=1", "cpu=1"), workers)
    assert len(found) == 2 and len(set(placed(found).values())) == 2 and len(left) == 1


def test_a_dedicated_actor_worker_holds_no_bundle_and_labels_must_match() -> None:
    workers = [worker("actor", "actor.x=1,cpu=8"), worker("plain", "cpu=1")]
    found, left = plan(group("PACK", "cpu=1,ssd"), workers)
    assert found == {} and left == [0]
    found, _ = plan(group("PACK", "cpu=1"), workers)
    assert placed(found) == {0: "plain"}


def test_pending_groups_ask_the_policy_for_what_present_workers_cannot_hold() -> None:
    bundles = Bundles()
    for made in (group("STRICT_PACK", "gpu=1", "gpu=1"), group("STRICT_SPREAD", "gpu=1", "gpu=1")):
        made.pg_id = f"{len(bundles.groups):016x}"
        bundles.groups[made.pg_id] = bundles.pending[made.pg_id] = made
    demand = bundles.demand([worker("cpu-only", "cpu=8")])
    assert sorted(demand, key=lambda d: d.spread) == [
        Demand("gpu=2", 1, False, "placement group bundles"),
        Demand("gpu=1", 2, True, "placement group bundles"),
    ]
    assert bundles.demand([worker("g1", "gpu=2"), worker("g2", "gpu=2")]) == [], "both fit the present workers"


def test_a_scaling_round_plans_a_bounded_number_of_pending_groups() -> None:
    from scaler.scheduler.bundles import DEMAND_GROUPS

    bundles = Bundles()
    for n in range(DEMAND_GROUPS * 3):
        made = group("STRICT_SPREAD", "gpu=1")
        made.pg_id = f"{n:016x}"
        bundles.groups[made.pg_id] = bundles.pending[made.pg_id] = made
    assert bundles.demand([]) == [Demand("gpu=1", DEMAND_GROUPS, True, "placement group bundles")]
