# A Ray program: wait loops, timeouts, cancel, as_completed, map_unordered.
import time

import ray

ray.init()


@ray.remote
def sleepy(seconds, tag):
    time.sleep(seconds)
    return tag


@ray.remote
def spin(seconds):
    end = time.time() + seconds
    while time.time() < end:
        pass
    return "finished"


quarter = sleepy.options(num_cpus=0.5)
refs = [quarter.remote(d, i) for i, d in enumerate([1.5, 0.05, 0.8, 0.05])]
ready, not_ready = ray.wait(refs, num_returns=2, timeout=10)
assert len(ready) == 2 and len(not_ready) == 2
assert sorted(ray.get(ready)) == [1, 3]
assert ready == [r for r in refs if r in ready], "ready refs keep the input order"
ready, not_ready = ray.wait(refs, num_returns=4, timeout=0.01)
assert len(ready) < 4 and len(ready) + len(not_ready) == 4
ready, not_ready = ray.wait(refs, num_returns=len(refs), fetch_local=True)
assert ready == refs and not_ready == []

pending = [sleepy.remote(0.1 * (5 - i), i) for i in range(5)]
done = []
while pending:
    finished, pending = ray.wait(pending)
    done.extend(ray.get(finished))
assert sorted(done) == [0, 1, 2, 3, 4]

slow = sleepy.remote(3, "slow")
try:
    ray.get(slow, timeout=0.2)
    raise SystemExit("must time out")
except ray.exceptions.GetTimeoutError:
    pass
except TimeoutError:
    raise SystemExit("GetTimeoutError expected") from None

running = spin.remote(30)
time.sleep(1.0)
start = time.time()
ray.cancel(running)
try:
    ray.get(running, timeout=20)
    raise SystemExit("cancelled task must not return")
except ray.exceptions.TaskCancelledError:
    pass
queued = [spin.remote(30) for _ in range(4)]
for ref in queued:
    ray.cancel(ref, force=True)
for ref in queued:
    try:
        ray.get(ref, timeout=20)
        raise SystemExit("cancelled task must not return")
    except ray.exceptions.TaskCancelledError:
        pass
assert time.time() - start < 20

values = list(ray.util.as_completed([sleepy.remote(0.01 * i, i) for i in range(12)], chunk_size=4))
assert sorted(values) == list(range(12))
refs_back = list(ray.util.as_completed([sleepy.remote(0, i) for i in range(3)], yield_obj_refs=True))
assert all(isinstance(r, ray.ObjectRef) for r in refs_back)
squares = sorted(ray.util.map_unordered(sleepy.options(num_cpus=0.5), [], chunk_size=2))
assert squares == []


@ray.remote
def double(x):
    return 2 * x


assert sorted(ray.util.map_unordered(double, range(30), backpressure_size=8, chunk_size=3)) == [
    2 * i for i in range(30)
]
print("PASSED waiting")
