# A Ray program: ray.get_runtime_context() in the driver, in tasks and in actors (plain and
# threaded): task, actor, worker and node ids, assigned resources, and is_canceled().
import threading
import time

import ray

ray.init()

driver = ray.get_runtime_context()
assert driver.get_task_id() is None and driver.get_actor_id() is None, "the driver runs no task"
DRIVER_WORKER = driver.get_worker_id()
assert isinstance(DRIVER_WORKER, str) and len(DRIVER_WORKER) == 56 and int(DRIVER_WORKER, 16) >= 0
assert isinstance(driver.get_node_id(), str) and driver.node_id == driver.get_node_id()
try:
    driver.is_canceled()
    raise SystemExit("is_canceled() is for tasks and actors only")
except RuntimeError:
    pass


@ray.remote
def describe():
    context = ray.get_runtime_context()
    return {
        "task": context.get_task_id(),
        "actor": context.get_actor_id(),
        "node": context.get_node_id(),
        "worker": context.get_worker_id(),
        "resources": context.get_assigned_resources(),
        "canceled": context.is_canceled(),
    }


NODES = {node["NodeID"] for node in ray.nodes()}
first, second = ray.get([describe.remote(), describe.remote()])
assert first["task"] and second["task"] and first["task"] != second["task"], "each task has its own id"
assert first["actor"] is None and first["canceled"] is False
assert first["node"] in NODES, (first["node"], NODES)
assert first["worker"] != DRIVER_WORKER
assert first["resources"] == {"CPU": 1.0}, first["resources"]
assert ray.get(describe.options(num_cpus=0.5).remote())["resources"] == {"CPU": 0.5}


@ray.remote(max_concurrency=2)
class Twin:
    def __init__(self):
        self.barrier = threading.Barrier(2)
        self.saw_cancel = False

    def describe(self):
        self.barrier.wait(timeout=60)  # two calls at once, each with its own task id
        context = ray.get_runtime_context()
        return context.get_task_id(), context.get_actor_id(), context.get_assigned_resources()

    def wait_for_cancel(self):
        deadline = time.monotonic() + 60
        while not ray.get_runtime_context().is_canceled():
            if time.monotonic() > deadline:
                return "never canceled"
            time.sleep(0.05)
        self.saw_cancel = True
        return "canceled"

    def saw(self):
        return self.saw_cancel


twin = Twin.remote()
(task_a, actor_a, resources), (task_b, actor_b, _) = ray.get([twin.describe.remote(), twin.describe.remote()])
assert task_a != task_b, "concurrent calls of a threaded actor have their own task ids"
assert actor_a and actor_a == actor_b, "and the actor's id"
assert resources == {}, "an actor reserves no CPU unless asked, as in Ray"

waiting = twin.wait_for_cancel.remote()
time.sleep(1.0)
ray.cancel(waiting)
try:
    ray.get(waiting, timeout=60)
    raise SystemExit("a cancelled call must raise")
except ray.exceptions.TaskCancelledError:
    pass
deadline = time.monotonic() + 60
while not ray.get(twin.saw.remote()):
    assert time.monotonic() < deadline, "a running sync call sees is_canceled() turn true"
    time.sleep(0.05)


@ray.remote(num_cpus=1)
class Holder:
    def resources(self):
        return ray.get_runtime_context().get_assigned_resources()

    async def in_async(self):
        try:
            ray.get_runtime_context().is_canceled()
        except RuntimeError:
            return "refused"
        return "allowed"


holder = Holder.remote()
assert ray.get(holder.resources.remote()) == {"CPU": 1.0}, "an actor's calls report what the actor asked for"
assert ray.get(holder.in_async.remote()) == "refused", "is_canceled() is not for async actors, as in Ray"
print("PASSED runtime_context")
