# A Ray program: async actors. Calls run concurrently on the actor's event loop (up to
# max_concurrency), refs are awaited inside methods, async generator methods stream their values,
# ray.cancel cancels a running call's coroutine, and a call whose result is never fetched still runs.
import asyncio
import time

import ray

ray.init()


@ray.remote
def square(x):
    return x * x


@ray.remote
class Gate:
    """Every call waits until `parties` calls are inside at once: only concurrency lets them out."""

    def __init__(self, parties):
        self.parties = parties
        self.inside = 0
        self.opened = asyncio.Event()
        self.marks = []
        self.cancelled = []

    async def enter(self, i):
        self.inside += 1
        if self.inside >= self.parties:
            self.opened.set()
        await asyncio.wait_for(self.opened.wait(), timeout=60)
        return i

    async def nap(self, seconds):
        await asyncio.sleep(seconds)
        return seconds

    async def mark(self, label):
        self.marks.append(label)

    async def get_marks(self):
        return list(self.marks)

    async def squares(self, values):
        return await asyncio.gather(*[square.remote(v) for v in values])

    async def square_one(self, value):
        return await square.remote(value)

    async def add_nested(self, refs):
        total = 0
        for ref in refs:
            total += await ref
        return total

    async def blocking_get(self, value):
        return ray.get(square.remote(value))

    async def count(self, n):
        for i in range(n):
            await asyncio.sleep(0.01)
            yield i

    @ray.method(num_returns=2)
    async def pair(self):
        await asyncio.sleep(0)
        return "left", "right"

    @ray.method(num_returns=2)
    async def pair_stream(self):
        yield "up"
        await asyncio.sleep(0)
        yield "down"

    async def broken_stream(self):
        yield "first"
        raise KeyError("stream broke")

    async def forever(self, label):
        try:
            await asyncio.sleep(600)
        except asyncio.CancelledError:
            self.cancelled.append(label)
            raise
        return "not cancelled"

    async def get_cancelled(self):
        return list(self.cancelled)

    async def fail(self):
        await asyncio.sleep(0)
        raise ValueError("async method failed")

    def sync_method(self, x):
        return x + 1


gate = Gate.remote(8)
assert sorted(ray.get([gate.enter.remote(i) for i in range(8)], timeout=120)) == list(range(8)), (
    "8 calls are inside an async actor at once (its default max_concurrency is 1000)"
)

started = time.monotonic()
assert ray.get([gate.nap.remote(1.0) for _ in range(6)], timeout=120) == [1.0] * 6
elapsed = time.monotonic() - started
assert elapsed < 5.5, f"6 one-second naps on an async actor took {elapsed:.1f}s: they did not overlap"

gate.mark.remote("never fetched")
deadline = time.monotonic() + 60
while "never fetched" not in ray.get(gate.get_marks.remote()):
    assert time.monotonic() < deadline, "a call whose result is never fetched must still run"
    time.sleep(0.05)

assert ray.get(gate.squares.remote([1, 2, 3])) == [1, 4, 9], "asyncio.gather over refs inside a method"
assert ray.get(gate.square_one.remote(7)) == 49, "await on a ref inside a method"
assert ray.get(gate.add_nested.remote([ray.put(5), square.remote(3)])) == 14, "awaiting refs it was passed"
assert ray.get(gate.blocking_get.remote(6)) == 36, "ray.get inside an async method works (it warns)"
assert ray.get(gate.sync_method.remote(1)) == 2, "a sync method of an async actor runs too"

stream = gate.count.remote(4)
assert isinstance(stream, ray.ObjectRefGenerator), "an async generator method streams by default"
assert [ray.get(ref) for ref in stream] == [0, 1, 2, 3]
assert ray.get(list(gate.pair.remote())) == ["left", "right"], "num_returns=2 on an async method"
assert ray.get(list(gate.pair_stream.remote())) == ["up", "down"], "and on an async generator method"
refs = list(gate.broken_stream.remote())
assert ray.get(refs[0]) == "first", "an async generator keeps the values it yielded before raising"
try:
    ray.get(refs[1])
    raise SystemExit("the async generator's error must reach the caller")
except KeyError:
    pass

try:
    ray.get(gate.fail.remote())
    raise SystemExit("an async method's exception must reach the caller")
except ValueError as exc:
    assert "async method failed" in str(exc)
    assert isinstance(exc, ray.exceptions.RayTaskError)

running = gate.forever.remote("doomed")
time.sleep(1.0)
ray.cancel(running)
try:
    ray.get(running, timeout=60)
    raise SystemExit("a cancelled async call must raise")
except ray.exceptions.TaskCancelledError:
    pass
deadline = time.monotonic() + 60
while "doomed" not in ray.get(gate.get_cancelled.remote()):
    assert time.monotonic() < deadline, "ray.cancel must cancel the running call's coroutine"
    time.sleep(0.05)
assert ray.get(gate.nap.remote(0.01)) == 0.01, "the actor lives on after one of its calls is cancelled"


@ray.remote(max_concurrency=2)
class Pair:
    def __init__(self):
        self.inside = 0
        self.most = 0

    async def work(self):
        self.inside += 1
        self.most = max(self.most, self.inside)
        await asyncio.sleep(0.3)
        self.inside -= 1
        return self.most

    async def peak(self):
        return self.most


pair = Pair.remote()
ray.get([pair.work.remote() for _ in range(6)], timeout=120)
assert ray.get(pair.peak.remote()) == 2, "max_concurrency=2 lets two calls in at once, never more"


@ray.remote
class Ticker:
    def __init__(self):
        self.ticks = 0
        self.background = asyncio.get_running_loop().create_task(self._tick())  # __init__ runs on the loop

    async def _tick(self):
        while True:
            self.ticks += 1
            await asyncio.sleep(0.01)

    async def ticks_after(self, seconds):
        before = self.ticks
        await asyncio.sleep(seconds)
        return self.ticks - before


ticker = Ticker.remote()
assert ray.get(ticker.ticks_after.remote(0.5), timeout=60) > 0, "a task started in __init__ runs on the actor's loop"

wide = Gate.options(max_concurrency=3).remote(3)
assert sorted(ray.get([wide.enter.remote(i) for i in range(3)], timeout=120)) == [0, 1, 2]
print("PASSED async_actors")
