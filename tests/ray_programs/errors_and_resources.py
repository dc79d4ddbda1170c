# A Ray program: errors, retries, worker crashes, resources, recursion.
import os
import tempfile
import time

import ray

ray.init()
NODES = len(ray.nodes())
NODE_CPUS = max(node["Resources"]["CPU"] for node in ray.nodes())
MARKERS = tempfile.mkdtemp()


def most_at_once(spans, slack=0.05):
    """The largest number of (start, end) spans that overlap, each trimmed by ``slack`` at both ends."""
    edges = sorted([(start + slack, 1) for start, _ in spans] + [(end - slack, -1) for _, end in spans])
    running = peak = 0
    for _, step in edges:
        running += step
        peak = max(peak, running)
    return peak


class MyError(Exception):
    pass


@ray.remote
def raise_my_error():
    raise MyError("custom failure")


@ray.remote
def depends_on(value):
    return value


@ray.remote(max_retries=2)
def die_twice_then_work(directory):
    attempts = len(os.listdir(directory))
    open(os.path.join(directory, str(attempts)), "w").close()
    if attempts < 2:
        os._exit(1)
    return attempts


@ray.remote(max_retries=1)
def always_die():
    os._exit(1)


@ray.remote(max_retries=3, retry_exceptions=True)
def flaky(directory):
    attempts = len(os.listdir(directory))
    open(os.path.join(directory, str(attempts)), "w").close()
    if attempts < 2:
        raise ConnectionError("transient")
    return "recovered"


@ray.remote(max_retries=3, retry_exceptions=[ConnectionError])
def wrong_kind(directory):
    open(os.path.join(directory, str(len(os.listdir(directory)))), "w").close()
    raise KeyError("not retried")


@ray.remote
def hold(seconds):
    start = time.time()
    time.sleep(seconds)
    return start, time.time()


@ray.remote(num_gpus=1)
def needs_gpu():
    return "gpu"


@ray.remote
def fib(n):
    if n < 2:
        return n
    return sum(ray.get([fib.remote(n - 1), fib.remote(n - 2)]))


try:
    ray.get(raise_my_error.remote())
    raise SystemExit("must raise")
except MyError as exc:
    assert isinstance(exc, ray.exceptions.RayTaskError), type(exc).__mro__
    assert "custom failure" in str(exc) and "raise_my_error" in str(exc)
    assert "Traceback" in str(exc) and 'raise MyError("custom failure")' in str(exc), str(exc)
try:
    ray.get(depends_on.remote(raise_my_error.remote()))
    raise SystemExit("errors propagate to dependents")
except MyError:
    pass

d1, d2, d3, d4 = (tempfile.mkdtemp(dir=MARKERS) for _ in range(4))
assert ray.get(die_twice_then_work.remote(d1), timeout=60) == 2
try:
    ray.get(always_die.remote(), timeout=60)
    raise SystemExit("must fail")
except ray.exceptions.WorkerCrashedError as exc:
    assert "always_die" in str(exc)
assert ray.get(flaky.remote(d2)) == "recovered"
try:
    ray.get(wrong_kind.remote(d3))
    raise SystemExit("must fail")
except KeyError:
    assert len(os.listdir(d3)) == 1, "exceptions not in the list are not retried"

whole_node = ray.get([hold.options(num_cpus=NODE_CPUS).remote(0.7) for _ in range(2 * NODES)])
assert most_at_once(whole_node) <= NODES, "tasks needing a whole node's CPUs run one per node at a time"
half_node = ray.get([hold.options(num_cpus=NODE_CPUS / 2).remote(0.7) for _ in range(2)])
assert most_at_once(half_node) == 2, "two half-node tasks run together"

if not ray.cluster_resources().get("GPU"):
    gpu_ref = needs_gpu.remote()
    assert ray.get([hold.remote(0) for _ in range(4)])
    ready, _ = ray.wait([gpu_ref], timeout=1.0)
    assert not ready, "a GPU task waits for a GPU worker while CPU work flows"
    ray.cancel(gpu_ref)

assert ray.get(fib.remote(7)) == 13, "recursion must not deadlock a small cluster"
resources = ray.cluster_resources()
assert resources["CPU"] == sum(node["Resources"]["CPU"] for node in ray.nodes())
assert ray.available_resources()["CPU"] <= resources["CPU"]
assert NODES >= 1 and all(node["Alive"] for node in ray.nodes())
print("PASSED errors_and_resources")
