# A Ray program: wait loops (also on refs nested in arguments), timeouts, cancel, as_completed, map_unordered.
import os
import tempfile
import time

import ray

ray.init()


@ray.remote
def sleepy(seconds, tag):
    time.sleep(seconds)
    return tag


@ray.remote(num_cpus=0.25)
def wait_inside(items):
    slow, fast = items
    start = time.time()
    first, _ = ray.wait([slow, fast], num_returns=1, timeout=0.5)
    ready, not_ready = ray.wait([slow, fast], num_returns=2, timeout=0.5)
    waited = time.time() - start
    return first == [fast], ready == [fast], not_ready == [slow], waited, ray.get(slow)


@ray.remote
def spin_and_tell(path, seconds):
    with open(path, "w") as out:
        out.write(str(os.getpid()))
    end = time.time() + seconds
    while time.time() < end:
        pass
    return "finished"


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:  # gone between open and read: ProcessLookupError
        return False


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

fast = sleepy.remote(0, "fast")
assert ray.get(fast) == "fast"
slow = quarter.remote(3, "slow")
outcome = ray.get(wait_inside.remote([slow, fast]), timeout=60)
assert all(outcome[:3]), f"refs nested in arguments are ready only once their object exists: {outcome}"
assert outcome[3] >= 0.45 and outcome[4] == "slow", outcome

running = spin.remote(30)
time.sleep(1.0)
start = time.time()
ray.cancel(running)
assert time.time() - start < 0.5, "ray.cancel returns at once"
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

pid_file = os.path.join(tempfile.mkdtemp(), "pid")
doomed = spin_and_tell.remote(pid_file, 60)
deadline = time.time() + 60
while not (os.path.exists(pid_file) and open(pid_file).read()) and time.time() < deadline:
    time.sleep(0.05)
pid = int(open(pid_file).read())
start = time.time()
ray.cancel(doomed, force=True)
assert time.time() - start < 0.5, "ray.cancel(force=True) returns at once"
try:
    ray.get(doomed, timeout=20)
    raise SystemExit("a force-cancelled task must not return")
except ray.exceptions.TaskCancelledError:
    pass
while alive(pid) and time.time() < start + 20:
    time.sleep(0.05)
assert not alive(pid), "force=True kills the process that ran the task"


@ray.remote(num_cpus=0.25)
def child_marks(path, seconds):
    open(path + ".started", "w").close()
    time.sleep(seconds)
    open(path + ".done", "w").close()


@ray.remote(num_cpus=0.25)
def parent_of(path, seconds):
    return ray.get(child_marks.remote(path, seconds))


marks = tempfile.mkdtemp()
recursive, flat = os.path.join(marks, "recursive"), os.path.join(marks, "flat")
parents = {recursive: parent_of.remote(recursive, 2), flat: parent_of.remote(flat, 2)}
deadline = time.time() + 60
while not all(os.path.exists(p + ".started") for p in parents) and time.time() < deadline:
    time.sleep(0.05)
ray.cancel(parents[recursive])
ray.cancel(parents[flat], recursive=False)
while not os.path.exists(flat + ".done") and time.time() < deadline:
    time.sleep(0.05)
assert os.path.exists(flat + ".done"), "recursive=False leaves the child running"
time.sleep(1.0)
assert not os.path.exists(recursive + ".done"), "ray.cancel cancels the tasks the task submitted"

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
