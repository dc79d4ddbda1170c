# A Ray program: generator tasks that raise after yielding keep the values they yielded (Ray 2.60).
import os
import tempfile

import ray

ray.init()


class Broken(ValueError):
    pass


@ray.remote
def yield_then_raise(n):
    for i in range(n):
        yield i * 10
    raise Broken(f"broke after {n}")


@ray.remote
def consume(value):
    return value


@ray.remote
def counted(directory, n):
    run = len(os.listdir(directory))
    open(os.path.join(directory, str(run)), "w").close()
    for _ in range(n):
        yield run
    raise Broken(f"run {run}")


@ray.remote
class Producer:
    def stream(self, n):
        for i in range(n):
            yield i * 10
        raise Broken("actor generator broke")

    @ray.method(num_returns=3)
    def three(self):
        yield "a"
        raise Broken("actor generator broke early")


def raises_task_error(ref, text):
    try:
        ray.get(ref)
    except Broken as exc:
        assert isinstance(exc, ray.exceptions.RayTaskError), type(exc).__mro__
        assert text in str(exc), str(exc)
        return True
    return False


# num_returns=N: the refs of the values yielded hold them; only the remaining refs raise.
refs = yield_then_raise.options(num_returns=4).remote(2)
assert isinstance(refs, list) and len(refs) == 4
assert ray.get(refs[:2]) == [0, 10], "values yielded before the error are kept"
assert raises_task_error(refs[2], "broke after 2") and raises_task_error(refs[3], "broke after 2")
try:
    ray.get(refs)
    raise SystemExit("ray.get of all the refs must raise the generator's error")
except Broken:
    pass
ready, _ = ray.wait(refs, num_returns=4, timeout=60)
assert len(ready) == 4, "every ref of a partly failed task is ready"
assert ray.get(consume.remote(refs[1])) == 10, "a kept value passes on to other tasks"
assert raises_task_error(consume.remote(refs[2]), "broke after 2"), "an error ref fails the task it is passed to"

# All the values came before the error: every ref holds a value (Ray stops at num_returns refs).
first, second = yield_then_raise.options(num_returns=2).remote(2)
assert ray.get([first, second]) == [0, 10]
assert ray.get(yield_then_raise.options(num_returns=1).remote(1)) == 0

# Raising before the first yield fails every ref.
nothing = yield_then_raise.options(num_returns=2).remote(0)
assert all(raises_task_error(ref, "broke after 0") for ref in nothing)

# num_returns="dynamic": the refs of the yielded values, then one ref that raises.
dynamic_ref = yield_then_raise.options(num_returns="dynamic").remote(3)
assert isinstance(dynamic_ref, ray.ObjectRef)
ref_generator = ray.get(dynamic_ref)
assert isinstance(ref_generator, ray.DynamicObjectRefGenerator), type(ref_generator)
dynamic_refs = list(ref_generator)
assert len(dynamic_refs) == 4, f"3 values and one error, got {len(dynamic_refs)} refs"
assert ray.get(dynamic_refs[:3]) == [0, 10, 20]
assert raises_task_error(dynamic_refs[3], "broke after 3")

# Streaming (the default for a generator, and num_returns="streaming"): values, one error, StopIteration.
for stream in (yield_then_raise.remote(2), yield_then_raise.options(num_returns="streaming").remote(2)):
    assert isinstance(stream, ray.ObjectRefGenerator), type(stream)
    assert ray.get(next(stream)) == 0
    assert ray.get(next(stream)) == 10
    assert raises_task_error(next(stream), "broke after 2")
    try:
        next(stream)
        raise SystemExit("after the error ref a streaming generator must stop")
    except StopIteration:
        pass
empty_stream = yield_then_raise.remote(0)
assert raises_task_error(next(empty_stream), "broke after 0")
try:
    next(empty_stream)
    raise SystemExit("after the error ref a streaming generator must stop")
except StopIteration:
    pass

# Actor generator methods behave the same.
producer = Producer.remote()
stream = producer.stream.remote(2)
assert [ray.get(next(stream)) for _ in range(2)] == [0, 10]
assert raises_task_error(next(stream), "actor generator broke")
a, b, c = producer.three.remote()
assert ray.get(a) == "a"
assert raises_task_error(b, "broke early") and raises_task_error(c, "broke early")

# retry_exceptions re-runs a streaming generator that raised; the error is the last attempt's.
directory = tempfile.mkdtemp()
stream_refs = list(counted.options(retry_exceptions=True, max_retries=2).remote(directory, 1))
assert len(stream_refs) == 2 and raises_task_error(stream_refs[1], "run 2")
assert len(os.listdir(directory)) == 3
# An error that is not among the retry_exceptions types is not retried.
directory = tempfile.mkdtemp()
value, error = counted.options(num_returns=2, retry_exceptions=[ConnectionError], max_retries=2).remote(directory, 1)
assert ray.get(value) == 0 and raises_task_error(error, "run 0")
assert len(os.listdir(directory)) == 1

print("PASSED generator_errors")
