# A Ray program: threaded actors (max_concurrency > 1 on a sync actor) and concurrency groups.
# Calls run on a pool of max_concurrency threads; each concurrency group has a limit of its own.
import threading
import time

import ray

ray.init()


@ray.remote(max_concurrency=4)
class Pool:
    def __init__(self):
        self.barrier = threading.Barrier(4)
        self.lock = threading.Lock()
        self.inside = 0
        self.most = 0

    def meet(self, i):
        self.barrier.wait(timeout=60)  # only four calls in at once get past it
        return i, threading.get_ident()

    def nap(self, seconds):
        with self.lock:
            self.inside += 1
            self.most = max(self.most, self.inside)
        time.sleep(seconds)
        with self.lock:
            self.inside -= 1
        return seconds

    def peak(self):
        return self.most


pool = Pool.remote()
met = ray.get([pool.meet.remote(i) for i in range(4)], timeout=120)
assert sorted(i for i, _ in met) == [0, 1, 2, 3], "4 calls are inside a max_concurrency=4 actor at once"
assert len({thread for _, thread in met}) == 4, "each on a thread of its own"

started = time.monotonic()
assert ray.get([pool.nap.remote(1.0) for _ in range(8)], timeout=120) == [1.0] * 8
elapsed = time.monotonic() - started
assert elapsed < 6.5, f"8 one-second calls on 4 threads took {elapsed:.1f}s: they did not overlap"
assert ray.get(pool.peak.remote()) == 4, "never more than max_concurrency calls at once"


@ray.remote
class Plain:
    def __init__(self):
        self.inside = 0
        self.most = 0
        self.log = []

    def nap(self, i):
        self.inside += 1
        self.most = max(self.most, self.inside)
        time.sleep(0.2)
        self.inside -= 1
        self.log.append(i)
        return self.most

    def history(self):
        return list(self.log)


plain = Plain.remote()
assert ray.get([plain.nap.remote(i) for i in range(4)]) == [1] * 4, "a plain actor runs one call at a time"
assert ray.get(plain.history.remote()) == [0, 1, 2, 3], "in submission order"

widened = Plain.options(max_concurrency=3).remote()
ray.get([widened.nap.remote(i) for i in range(6)], timeout=120)
assert ray.get(widened.nap.remote(6)) >= 2, ".options(max_concurrency=3) makes a threaded actor"


@ray.remote(concurrency_groups={"io": 2, "compute": 1})
class Grouped:
    def __init__(self):
        self.io_barrier = threading.Barrier(2)
        self.lock = threading.Lock()
        self.inside = {"io": 0, "compute": 0, "default": 0}
        self.most = {"io": 0, "compute": 0, "default": 0}

    def _enter(self, group):
        with self.lock:
            self.inside[group] += 1
            self.most[group] = max(self.most[group], self.inside[group])

    def _leave(self, group):
        with self.lock:
            self.inside[group] -= 1

    @ray.method(concurrency_group="io")
    def fetch(self, i):
        self._enter("io")
        self.io_barrier.wait(timeout=60)  # two io calls meet: the io group runs two at once
        self._leave("io")
        return i

    @ray.method(concurrency_group="compute")
    def crunch(self, seconds):
        self._enter("compute")
        time.sleep(seconds)
        self._leave("compute")
        return seconds

    def plain(self, seconds, group="default"):
        self._enter(group)
        time.sleep(seconds)
        self._leave(group)
        return seconds

    def peaks(self):
        return dict(self.most)


grouped = Grouped.remote()
crunching = [grouped.crunch.remote(0.5) for _ in range(3)]
assert sorted(ray.get([grouped.fetch.remote(i) for i in range(4)], timeout=120)) == [0, 1, 2, 3], (
    "the io group runs its calls while the compute group is busy"
)
assert ray.get(crunching, timeout=120) == [0.5] * 3
as_compute = [grouped.plain.options(concurrency_group="compute").remote(0.3, "compute") for _ in range(2)]
assert ray.get([*as_compute, grouped.plain.remote(0.3)], timeout=120) == [0.3] * 3
peaks = ray.get(grouped.peaks.remote())
assert peaks["io"] == 2 and peaks["compute"] == 1 and peaks["default"] == 1, peaks
try:
    grouped.plain.options(concurrency_group="missing").remote(0)
    raise SystemExit("an unknown concurrency group must be refused")
except ValueError:
    pass

Grouped.options(name="grouped", namespace="threaded").remote()
found = ray.get_actor("grouped", namespace="threaded")
by_name = [found.crunch.remote(0.1), found.plain.options(concurrency_group="io").remote(0.1, "io")]
assert ray.get(by_name) == [0.1] * 2, "a handle found by name keeps the actor's concurrency groups"

slow = Pool.remote()
blockers = [slow.nap.remote(2.0) for _ in range(4)]
queued = slow.nap.remote(2.0)
time.sleep(0.5)
try:
    ray.cancel(queued, force=True)
    raise SystemExit("force=True must be refused for an actor call, as in Ray")
except ValueError:
    pass
ray.cancel(queued)
try:
    ray.get(queued, timeout=60)
    raise SystemExit("a cancelled call must raise")
except ray.exceptions.TaskCancelledError:
    pass
assert ray.get(blockers, timeout=60) == [2.0] * 4, "cancelling a queued call leaves the running ones be"
print("PASSED threaded_actors")
