# A Ray program: placement groups. Bundles are reserved together, tasks and actors run inside their
# bundle (and see their group), children are captured, a reservation keeps other work out until it
# is removed, a group that cannot be placed stays pending, and bad requests are refused.
import time

import ray
from ray.util.placement_group import (
    get_current_placement_group,
    get_placement_group,
    placement_group_table,
    remove_placement_group,
)
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

ray.init()


def inside(group, index=-1, capture=False):
    return PlacementGroupSchedulingStrategy(
        group, placement_group_bundle_index=index, placement_group_capture_child_tasks=capture
    )


@ray.remote(num_cpus=1)
def where():
    current = get_current_placement_group()
    return ray.get_runtime_context().get_node_id(), current.id.hex() if current else None


@ray.remote(num_cpus=0)
def parent():
    return ray.get(where.remote())


@ray.remote(num_cpus=1)
class Holder:
    def where(self):
        current = get_current_placement_group()
        return ray.get_runtime_context().get_node_id(), current.id.hex() if current else None


cpus = int(ray.cluster_resources()["CPU"])
pair = ray.util.placement_group([{"CPU": 1}, {"CPU": 1}], strategy="STRICT_PACK", name="pair")
assert ray.get(pair.ready(), timeout=60) == pair
assert pair.wait(10)
assert int(ray.cluster_resources()["CPU"]) == cpus, "what a group reserves still counts in the totals"
table = placement_group_table(pair)
assert table["state"] == "CREATED" and table["strategy"] == "STRICT_PACK" and table["name"] == "pair", table
assert table["bundles"] == {0: {"CPU": 1.0}, 1: {"CPU": 1.0}}, table["bundles"]
node = table["bundles_to_node_id"][0]
assert table["bundles_to_node_id"][1] == node, "STRICT_PACK: one node"
assert pair.bundle_specs == [{"CPU": 1.0}, {"CPU": 1.0}] and pair.bundle_count == 2
assert get_placement_group("pair") == pair
assert pair.id.hex() in placement_group_table()

assert ray.get(where.options(scheduling_strategy=inside(pair, 0)).remote(), timeout=60) == (node, pair.id.hex())
holder = Holder.options(scheduling_strategy=inside(pair, 1)).remote()
assert ray.get(holder.where.remote(), timeout=60) == (node, pair.id.hex())
captured = parent.options(scheduling_strategy=inside(pair, capture=True)).remote()
assert ray.get(captured, timeout=60) == (node, pair.id.hex()), "a captured child runs in its parent's group"

for bad in (
    lambda: where.options(num_cpus=2, scheduling_strategy=inside(pair, 0)).remote(),
    lambda: where.options(scheduling_strategy=inside(pair, 5)).remote(),
):
    try:
        bad()
    except ValueError:
        pass
    else:
        raise SystemExit("a request no bundle can hold must raise ValueError")

ray.kill(holder)
remove_placement_group(pair)

everything = ray.util.placement_group([{"CPU": 1}] * cpus, strategy="PACK")
assert everything.wait(60)
outside = where.remote()
ready, _ = ray.wait([outside], timeout=1.5)
assert not ready, "no cpu is left outside the group"
remove_placement_group(everything)
assert ray.get(outside, timeout=60)[1] is None
assert placement_group_table(everything)["state"] == "REMOVED"

too_wide = ray.util.placement_group([{"CPU": 0.5}] * (len(ray.nodes()) + 1), strategy="STRICT_SPREAD")
assert not too_wide.wait(1.0), "STRICT_SPREAD needs one node per bundle"
assert placement_group_table(too_wide)["state"] == "PENDING"
remove_placement_group(too_wide)


# A group is its job's: a task of the job may remove it, and one an actor made outlives the actor.
@ray.remote(num_cpus=0)
def remove_it(group):
    remove_placement_group(group)


@ray.remote(num_cpus=0)
class Maker:
    def make(self):
        self.group = ray.util.placement_group([{"CPU": 0.5}])
        return self.group


def state_becomes(group, wanted):
    deadline = time.monotonic() + 20
    while placement_group_table(group)["state"] != wanted and time.monotonic() < deadline:
        time.sleep(0.1)
    return placement_group_table(group)["state"] == wanted


mine = ray.util.placement_group([{"CPU": 0.5}])
assert mine.wait(60)
ray.get(remove_it.remote(mine), timeout=60)
assert state_becomes(mine, "REMOVED"), "a task of the job removes the job's group"
maker = Maker.remote()
made = ray.get(maker.make.remote(), timeout=60)
assert made.wait(60)
ray.kill(maker)
time.sleep(2)
assert placement_group_table(made)["state"] == "CREATED", "a group an actor made is its job's"
remove_placement_group(made)

try:
    ray.util.placement_group([{"CPU": 0}])
except ValueError:
    pass
else:
    raise SystemExit("a bundle of nothing must raise ValueError")
try:
    ray.util.placement_group([{"CPU": 1}], strategy="EVERYWHERE")
except ValueError:
    pass
else:
    raise SystemExit("an unknown strategy must raise ValueError")
print("PASSED placement_groups")
