# A Ray program whose tasks and actors import Ray's modules themselves: they see the Ray the driver
# sees (the installed Ray, patched, or the shim), with ray.util.queue, ray.util.multiprocessing,
# ray.experimental.tqdm_ray, ray.runtime_context, ray.util.scheduling_strategies and
# ray.util.placement_group; what Scaler lacks refuses there as on the driver, naming the API.
import ray
from ray.experimental.tqdm_ray import tqdm

ray.init()


def describe():
    """What `import ray` gives in this process. Imports its own `ray`: never the driver's by reference."""
    import ray as here
    import ray.experimental.tqdm_ray
    import ray.runtime_context
    import ray.util.multiprocessing
    import ray.util.placement_group
    import ray.util.queue
    import ray.util.scheduling_strategies
    from ray.util.placement_group import PlacementGroup, placement_group
    from ray.util.scheduling_strategies import In, NodeLabelSchedulingStrategy

    bar = ray.experimental.tqdm_ray.tqdm(total=3, desc="steps")
    for _ in range(3):
        bar.update(1)
    bar.close()
    labels = NodeLabelSchedulingStrategy(hard={"zone": In("a")})
    refusals = {}
    probes = {
        "bundle_label_selector": lambda: placement_group([{"CPU": 1}], bundle_label_selector=[{"zone": "a"}]),
        "ray.get_gpu_ids": lambda: here.get_gpu_ids(),
        "ray.util.list_named_actors": lambda: here.util.list_named_actors(),
        "ray.data": lambda: here.data,
        "NodeLabelSchedulingStrategy": lambda: here.remote(scheduling_strategy=labels)(len),
    }
    for name, probe in probes.items():
        try:
            probe()
            refusals[name] = "accepted"
        except NotImplementedError as exc:
            refusals[name] = "refused" if name in str(exc) else f"refused without naming it: {exc}"
    return {
        "ray": (here.__name__, getattr(here, "__scaler_patched__", False)),
        "classes": [
            f"{c.__module__}.{c.__qualname__}"
            for c in (
                here.util.queue.Queue,
                here.util.queue.Empty,
                here.util.multiprocessing.Pool,
                here.experimental.tqdm_ray.tqdm,
                here.runtime_context.RuntimeContext,
                here.util.scheduling_strategies.NodeAffinitySchedulingStrategy,
                PlacementGroup,  # ray.util.placement_group is the function, as in Ray
                here.util.ActorPool,
                here.exceptions.RayTaskError,
            )
        ],
        "context": type(here.get_runtime_context()).__name__,
        "refusals": refusals,
    }


@ray.remote
def in_task():
    return describe()


@ray.remote
class Inspector:
    def describe(self):
        return describe()


driver = describe()
assert set(driver["refusals"].values()) == {"refused"}, driver["refusals"]
assert ray.get(in_task.remote(), timeout=120) == driver, "a task sees the Ray the driver sees"
assert ray.get(Inspector.remote().describe.remote(), timeout=120) == driver, "an actor sees the Ray the driver sees"


@ray.remote
def drain(channel):
    import ray.util.queue

    items = []
    while True:
        try:
            items.append(channel.get(timeout=0.5))
        except ray.util.queue.Empty:  # the class the driver's Queue raises is the task's too
            return items


@ray.remote
def count_with_progress(n):
    from ray.experimental.tqdm_ray import tqdm

    return sum(1 for _ in tqdm(range(n), desc="counting"))


from ray.util.queue import Queue  # noqa: E402

channel = Queue()
for item in ("a", "b", "c"):
    channel.put(item)
assert ray.get(drain.remote(channel), timeout=120) == ["a", "b", "c"]
assert sum(ray.get([count_with_progress.remote(n) for n in (2, 3)], timeout=120)) == 5
assert sum(1 for _ in tqdm(range(4), desc="driver")) == 4

print("PASSED workers_import_ray")
