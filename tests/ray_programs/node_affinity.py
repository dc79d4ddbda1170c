# A Ray program: NodeAffinitySchedulingStrategy. Work pinned to a node runs there, tasks and actors
# alike; a soft affinity to a node that is not there runs elsewhere, a hard one cannot be scheduled.
import ray
from ray.util.placement_group import placement_group, remove_placement_group
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

ray.init()


@ray.remote
def node():
    return ray.get_runtime_context().get_node_id()


@ray.remote
class Where:
    def node(self):
        return ray.get_runtime_context().get_node_id()


def pinned(node_id, soft=False):
    return NodeAffinitySchedulingStrategy(node_id=node_id, soft=soft)


nodes = [n["NodeID"] for n in ray.nodes() if n["Alive"]]
assert nodes
for target in nodes:
    ran = ray.get([node.options(scheduling_strategy=pinned(target)).remote() for _ in range(4)], timeout=60)
    assert set(ran) == {target}, (target, ran)
actor = Where.options(scheduling_strategy=pinned(nodes[-1])).remote()
assert ray.get(actor.node.remote(), timeout=60) == nodes[-1]

here = ray.get_runtime_context().get_node_id()  # the driver's node
assert ray.get(node.options(scheduling_strategy=pinned(here)).remote(), timeout=60) in nodes

absent = "ab" * 28
assert ray.get(node.options(scheduling_strategy=pinned(absent, soft=True)).remote(), timeout=60) in nodes
try:
    ray.get(node.options(scheduling_strategy=pinned(absent)).remote(), timeout=60)
except ray.exceptions.TaskUnschedulableError:
    pass
else:
    raise SystemExit("a hard affinity to a node that is not there cannot be scheduled")

# What a placement group reserves on a node is still the node's: work pinned there waits for it.
alive = [n for n in ray.nodes() if n["Alive"]]
everything = placement_group([{"CPU": n["Resources"]["CPU"]} for n in alive], strategy="STRICT_SPREAD")
ray.get(everything.ready(), timeout=60)
waiting = node.options(scheduling_strategy=pinned(nodes[0])).remote()
assert not ray.wait([waiting], timeout=1)[0], "every CPU is reserved"
remove_placement_group(everything)
assert ray.get(waiting, timeout=60) == nodes[0]
print("PASSED node_affinity")
