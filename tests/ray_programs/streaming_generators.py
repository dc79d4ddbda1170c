# A Ray program: streaming generators hand out each value's ref as the value is produced (Ray 2.60).
#
# Each generator below stops after its first value(s) until the driver, having received them,
# creates a file (or acks through the actor): if refs only came once a generator had ended, the
# driver would never receive them, the generator would give up after GATE_SECONDS and this fails.
import asyncio
import os
import tempfile
import threading
import time

import ray

ray.init()

GATE_SECONDS = 60.0
directory = tempfile.mkdtemp()


class Broken(ValueError):
    pass


def gate_path(name):
    return os.path.join(directory, name)


def wait_for_gate(path):
    deadline = time.monotonic() + GATE_SECONDS
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise TimeoutError(f"the driver never opened {path}: the values did not stream")
        time.sleep(0.02)


def open_gate(path):
    open(path, "w").close()


@ray.remote
def gated(path, n):
    yield "first"
    wait_for_gate(path)
    for i in range(n):  # noqa: UP028 - Ray 2.60 sends into what `yield from` delegates to
        yield i


@ray.remote
def gated_then_raise(path):
    yield 0
    yield 1
    wait_for_gate(path)
    raise Broken("broke after the gate")


@ray.remote
def squares(n):
    for i in range(n):
        yield i * i


@ray.remote
def double(x):
    return 2 * x


@ray.remote
def refs_inside(n):
    for i in range(n):
        yield [ray.put(i), double.remote(i)]


@ray.remote
def sum_of_stream(n):
    return sum(ray.get(ref) for ref in squares.remote(n))


@ray.remote
class AsyncSource:
    async def produce(self, path, n):
        yield "first"
        deadline = time.monotonic() + GATE_SECONDS
        while not os.path.exists(path):
            if time.monotonic() > deadline:
                raise TimeoutError(f"the driver never opened {path}: the values did not stream")
            await asyncio.sleep(0.02)
        for i in range(n):
            yield i

    async def ping(self):
        return "pong"


@ray.remote(max_concurrency=4)
class Steps:
    def __init__(self):
        self.acked = {}
        self.lock = threading.Lock()

    def ack(self, name, step):
        with self.lock:
            self.acked[name] = step

    def steps(self, name, n):
        for step in range(n):
            yield (name, step)
            deadline = time.monotonic() + GATE_SECONDS
            while True:
                with self.lock:
                    if self.acked.get(name, -1) >= step:
                        break
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{name}: step {step} was never acked: the values did not stream")
                time.sleep(0.01)


def ends(stream):
    try:
        next(stream)
    except StopIteration:
        return True
    return False


# The first value's ref arrives while the generator still waits for the driver.
gate = gate_path("first")
stream = gated.remote(gate, 3)
assert isinstance(stream, ray.ObjectRefGenerator), type(stream)
first = next(stream)
assert ray.get(first) == "first"
assert not os.path.exists(gate)
open_gate(gate)
assert ray.get(list(stream)) == [0, 1, 2]
assert ray.get(first) == "first", "a value stays readable after the stream ended"

# ray.wait on the generator: ready when its next ref is, not before.
gate = gate_path("wait")
stream = gated.options(num_returns="streaming").remote(gate, 2)
ready, not_ready = ray.wait([stream], timeout=GATE_SECONDS)
assert len(ready) == 1 and ready[0] is stream and not not_ready, (ready, not_ready)
assert ray.get(next(stream)) == "first"
ready, not_ready = ray.wait([stream], timeout=1.0)
assert not ready and len(not_ready) == 1 and not_ready[0] is stream, "the generator waits: nothing is ready"
open_gate(gate)
ready, _ = ray.wait([stream], timeout=GATE_SECONDS)
assert len(ready) == 1 and ready[0] is stream
assert [ray.get(ref) for ref in stream] == [0, 1]

# An exception after some yields: those values arrive first (before it raises) and stay readable,
# then a ref that raises, then the end.
gate = gate_path("raise")
stream = gated_then_raise.remote(gate)
zero, one = next(stream), next(stream)
assert ray.get([zero, one]) == [0, 1]
open_gate(gate)
error_ref = next(stream)
try:
    ray.get(error_ref)
    raise SystemExit("the ref after the values must raise the generator's error")
except Broken as exc:
    assert isinstance(exc, ray.exceptions.RayTaskError), type(exc).__mro__
    assert "broke after the gate" in str(exc), str(exc)
assert ends(stream), "after the error ref the stream must end"
assert ray.get([zero, one]) == [0, 1], "values yielded before the error stay readable"

# Values holding refs the generator made (a put, a subtask): on Scaler the refs outlive the
# generator's own. Ray 2.60 frees them when the generator ends (ReferenceCountingAssertionError).
if hasattr(ray, "scaler_init") or getattr(ray, "__scaler_patched__", False):
    for i, ref in enumerate(refs_inside.remote(3)):
        put_ref, sub_ref = ray.get(ref)
        del ref
        assert ray.get([put_ref, sub_ref]) == [i, 2 * i]

# A task reads a stream of its own.
assert ray.get(sum_of_stream.remote(4)) == 14

# A streaming generator consumed with async for.


async def consume(stream):
    return [await ref async for ref in stream]


assert asyncio.run(consume(squares.remote(4))) == [0, 1, 4, 9]

# An async actor's generator method streams from the actor's event loop, which keeps serving calls.
source = AsyncSource.remote()
gate = gate_path("async")
stream = source.produce.remote(gate, 2)
assert ray.get(next(stream)) == "first"
assert ray.get(source.ping.remote()) == "pong", "the actor serves other calls while its generator waits"
open_gate(gate)
assert ray.get(list(stream)) == [0, 1]

# A threaded actor runs two generator calls at once, and their values arrive interleaved: each
# call waits, after each value, for the driver to ack it.
steps = Steps.remote()
a = steps.steps.remote("a", 3)
b = steps.steps.remote("b", 3)
arrived = []
for step in range(3):
    arrived.append(ray.get(next(a)))
    arrived.append(ray.get(next(b)))
    ray.get([steps.ack.remote("a", step), steps.ack.remote("b", step)])
assert arrived == [("a", 0), ("b", 0), ("a", 1), ("b", 1), ("a", 2), ("b", 2)], arrived
assert ends(a) and ends(b)

print("PASSED streaming_generators")
