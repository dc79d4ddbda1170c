# A Ray program: ray.util.queue.Queue shared by the driver, tasks and an actor (blocking, timeouts,
# Empty/Full, batches), and ray.util.multiprocessing.Pool (map, imap, starmap, apply, async calls
# with callbacks, initializer, errors, close/join/terminate), also used from inside a task.
import itertools
import os
import queue
import time

import ray
from ray.util.multiprocessing import Pool
from ray.util.queue import Empty, Full, Queue

ray.init()

q = Queue(maxsize=3)
assert q.empty() and q.qsize() == 0 and q.size() == 0 and len(q) == 0 and not q.full()
q.put(1)
q.put_nowait(2)
q.put(3, block=True, timeout=5)
assert q.full() and q.qsize() == 3 and not q.empty()
try:
    q.put_nowait(4)
    raise SystemExit("put_nowait on a full queue must raise Full")
except Full:
    pass
started = time.monotonic()
try:
    q.put(4, timeout=0.3)
    raise SystemExit("put with a timeout on a full queue must raise Full")
except Full:
    waited = time.monotonic() - started
    assert 0.25 <= waited < 30, waited
assert [q.get(), q.get_nowait(), q.get(timeout=5)] == [1, 2, 3], "first in, first out"
try:
    q.get_nowait()
    raise SystemExit("get_nowait on an empty queue must raise Empty")
except Empty:
    pass
started = time.monotonic()
try:
    q.get(timeout=0.3)
    raise SystemExit("get with a timeout on an empty queue must raise Empty")
except queue.Empty:  # Ray's Empty is the standard library's too
    assert 0.25 <= time.monotonic() - started < 30
for bad in (lambda: q.get(timeout=-1), lambda: q.put(0, timeout=-1)):
    try:
        bad()
        raise SystemExit("a negative timeout must raise ValueError")
    except ValueError:
        pass
q.put_nowait_batch([5, 6])
try:
    q.put_nowait_batch([7, 8])  # only one slot is left: nothing is added
    raise SystemExit("a batch that does not fit must raise Full")
except Full:
    pass
assert q.get_nowait_batch(2) == [5, 6] and q.empty()


@ray.remote
def produce(channel, items):
    for item in items:
        channel.put(item)  # blocks while the queue (maxsize 3) is full
    return len(items)


@ray.remote
class Consumer:
    def take(self, channel, count):
        return [channel.get(timeout=120) for _ in range(count)]

    def poll(self, channel):
        try:
            channel.get(timeout=0.1)
            return "got"
        except ray.util.queue.Empty:
            return "empty"


consumer = Consumer.remote()
taken = consumer.take.remote(q, 12)  # waits in the actor until the task's puts arrive
assert ray.get(produce.remote(q, list(range(12))), timeout=120) == 12
assert ray.get(taken, timeout=120) == list(range(12)), "a queue passed to a task and an actor is one queue"
assert ray.get(consumer.poll.remote(q), timeout=60) == "empty"
q.shutdown()


def square(x):
    return x * x


def add(a, b=0):
    return a + b


def fail_on_three(x):
    if x == 3:
        raise ValueError("three")
    return x


def mark(tag):
    os.environ["POOL_INIT"] = tag


def init_tag(_):
    return os.environ.get("POOL_INIT")


seen = []
errors = []
with Pool(processes=2, initializer=mark, initargs=("ready",)) as pool:
    assert pool.map(square, range(10)) == [x * x for x in range(10)]
    assert pool.map(square, range(10), chunksize=3) == [x * x for x in range(10)]
    assert list(pool.imap(square, range(7))) == [x * x for x in range(7)]
    assert list(pool.imap(square, range(7), chunksize=2)) == [x * x for x in range(7)]
    assert sorted(pool.imap_unordered(square, range(7))) == [x * x for x in range(7)]
    assert pool.starmap(add, [(1, 2), (3, 4)]) == [3, 7]
    assert pool.apply(add, (2, 3)) == 5 and pool.apply(add, (2,), {"b": 5}) == 7
    single = pool.apply_async(square, (7,), callback=seen.append)
    assert single.get(timeout=120) == 49 and single.ready() and single.successful() and seen == [49]
    assert pool.map_async(square, range(4)).get(timeout=120) == [0, 1, 4, 9]
    assert pool.starmap_async(add, [(1, 1)]).get(timeout=120) == [2]
    assert set(pool.map(init_tag, range(4))) == {"ready"}, "the initializer ran before the pool's work"
    failed = pool.apply_async(fail_on_three, (3,), error_callback=errors.append)
    try:
        failed.get(timeout=120)
        raise SystemExit("an async call that raised must raise from get")
    except ValueError:
        pass
    assert not failed.successful() and len(errors) == 1 and isinstance(errors[0], ValueError)
    try:
        pool.map(fail_on_three, range(5))
        raise SystemExit("map over a call that raises must raise")
    except ValueError as exc:
        assert "three" in str(exc)
try:
    pool.map(square, [1])
    raise SystemExit("a terminated pool must refuse work")
except ValueError:
    pass


def span(_):
    started = time.time()
    time.sleep(0.2)
    return started, time.time()


with Pool(processes=1) as serial:  # one at a time, as a pool of one process runs them
    spans = sorted(serial.map(span, range(3), chunksize=1))
assert all(first[1] <= second[0] for first, second in itertools.pairwise(spans)), spans

pool = Pool(1)
later = pool.map_async(square, [4, 5])
try:
    pool.join()
    raise SystemExit("join before close must raise")
except ValueError:
    pass
pool.close()
pool.join()
assert later.ready() and later.get() == [16, 25]


@ray.remote
def pool_in_task(n):
    from ray.util.multiprocessing import Pool

    with Pool(processes=1) as inner:
        return inner.map(abs, range(-n, 0))


assert ray.get(pool_in_task.remote(3), timeout=120) == [3, 2, 1], "a pool works inside a task"

print("PASSED queue_and_pool")
