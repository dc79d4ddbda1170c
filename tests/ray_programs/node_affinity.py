# A Ray program: NodeAffinitySchedulingStrategy. Work pinned to a node runs there, tasks and actors
# alike; a soft affinity to a node that is not there runs elsewhere, a hard one cannot be scheduled.
import ray
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

absent = "ab" * 28
assert ray.get(node.options(scheduling_strategy=pinned(absent, soft=True)).remote(), timeout=60) in nodes
try:
    ray.get(node.options(scheduling_strategy=pinned(absent)).remote(), timeout=60)
except ray.exceptions.TaskUnschedulableError:
    pass
else:
    raise SystemExit("a hard affinity to a node that is not there cannot be scheduled")
print("PASSED node_affinity")
