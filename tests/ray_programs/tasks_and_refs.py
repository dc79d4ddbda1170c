# A Ray program: tasks, chaining, put/get, num_returns and generators, nested refs, options, runtime_env, map-reduce.
import os

import numpy as np
import ray

ray.init()


@ray.remote
def square(x):
    return x * x


@ray.remote
def add(a, b):
    return a + b


@ray.remote(num_returns=3)
def split3(x):
    return x, x + 1, x + 2


@ray.remote
def count_up(n):
    for i in range(n):
        yield i * 10


@ray.remote
def failing_generator():
    yield 1
    raise ValueError("generator broke")


@ray.remote
def total_of(ref_generator):
    assert isinstance(ref_generator, ray.DynamicObjectRefGenerator), type(ref_generator)
    return sum(ray.get(ref) for ref in ref_generator)


@ray.remote
def inspect_nested(items):
    kinds = [isinstance(item, ray.ObjectRef) for item in items]
    return kinds, sum(ray.get(items))


@ray.remote
def inspect_nested_dict(mapping):
    kinds = {key: isinstance(value, ray.ObjectRef) for key, value in mapping.items() if key != "deeper"}
    deeper = [isinstance(ref, ray.ObjectRef) for ref in mapping["deeper"]["refs"]]
    values = ray.get([mapping["a"], mapping["b"], *mapping["deeper"]["refs"]])
    return kinds, deeper, values


@ray.remote
def array_stats(array):
    return float(array.sum()), array.shape


@ray.remote
def read_env():
    return os.environ.get("COMPAT_FLAG", "unset")


@ray.remote
def whoami():
    return ray.get_runtime_context().get_task_id()


@ray.remote
def mapper(chunk):
    counts = {}
    for word in chunk.split():
        counts[word] = counts.get(word, 0) + 1
    return counts


@ray.remote
def reducer(*partials):
    total = {}
    for part in partials:
        for word, n in part.items():
            total[word] = total.get(word, 0) + n
    return total


assert ray.is_initialized()
assert ray.get([square.remote(i) for i in range(10)]) == [i * i for i in range(10)]
chained = add.remote(square.remote(3), square.remote(4))
assert ray.get(chained) == 25
assert ray.get(add.remote(add.remote(1, 2), b=add.remote(3, 4))) == 10

refs = split3.remote(5)
assert isinstance(refs, list) and len(refs) == 3 and ray.get(refs) == [5, 6, 7]
merged = split3.options(num_cpus=1)
assert len(merged.remote(1)) == 3, "options() merges with the decorator: num_returns=3 is kept"

# Generators, as in Ray 2.60: num_returns=N, "streaming" (the default for generators), "dynamic".
four = count_up.options(num_returns=4).remote(4)
assert isinstance(four, list) and ray.get(four) == [0, 10, 20, 30]
assert ray.get(count_up.options(num_returns=1).remote(1)) == 0
stream = count_up.remote(3)
assert isinstance(stream, ray.ObjectRefGenerator), type(stream)
first = next(stream)
assert isinstance(first, ray.ObjectRef) and ray.get(first) == 0
assert [ray.get(ref) for ref in stream] == [10, 20]
try:
    next(stream)
    raise SystemExit("an exhausted ObjectRefGenerator must raise StopIteration")
except StopIteration:
    pass
explicit = count_up.options(num_returns="streaming").remote(2)
ready, _ = ray.wait([explicit], timeout=60)
assert ready == [explicit], "ray.wait takes streaming generators"
assert [ray.get(ref) for ref in explicit] == [0, 10]
try:
    for ref in failing_generator.remote():
        ray.get(ref)
    raise SystemExit("a generator's error must reach the caller through its refs")
except ValueError as exc:
    assert "generator broke" in str(exc)
dynamic_ref = count_up.options(num_returns="dynamic").remote(3)
assert isinstance(dynamic_ref, ray.ObjectRef), type(dynamic_ref)
ref_generator = ray.get(dynamic_ref)
assert isinstance(ref_generator, ray.DynamicObjectRefGenerator), type(ref_generator)
assert [ray.get(ref) for ref in ref_generator] == [0, 10, 20]
assert ray.get(total_of.remote(dynamic_ref)) == 30, "a dynamic generator's ref passes the generator to tasks"

kinds, total = ray.get(inspect_nested.remote([square.remote(i) for i in range(4)]))
assert kinds == [True] * 4 and total == 14, (kinds, total)
nested = {"a": square.remote(2), "b": ray.put(5), "deeper": {"refs": [square.remote(3)]}, "plain": 1}
kinds, deeper, values = ray.get(inspect_nested_dict.remote(nested))
assert kinds == {"a": True, "b": True, "plain": False} and deeper == [True], (kinds, deeper)
assert values == [4, 5, 9], values
assert ray.get(square.options(memory=64 * 1024 * 1024).remote(6)) == 36, "memory= is a resource request"

big = np.random.default_rng(1).normal(size=(2000, 1000))
big_ref = ray.put(big)
assert np.array_equal(ray.get(big_ref), big)
s, shape = ray.get(array_stats.remote(big_ref))
assert abs(s - big.sum()) < 1e-6 and shape == (2000, 1000)

assert ray.get(read_env.options(runtime_env={"env_vars": {"COMPAT_FLAG": "on"}}).remote()) == "on"
assert ray.get(read_env.remote()) == "unset"
task_id = ray.get(whoami.remote())
assert isinstance(task_id, str) and task_id
assert ray.get_runtime_context().get_task_id() is None

text = ["a b a", "b c", "a c c d"] * 10
partials = [mapper.remote(chunk) for chunk in text]
assert ray.get(reducer.remote(*partials)) == {"a": 30, "b": 20, "c": 30, "d": 10}

try:
    square(3)
    raise SystemExit("calling a remote function directly must fail")
except TypeError as exc:
    assert ".remote()" in str(exc)

try:
    ray.init()
    raise SystemExit("ray.init twice must fail")
except RuntimeError as exc:
    assert "twice" in str(exc)
ray.init(ignore_reinit_error=True)

try:
    ray.remote(label_selector={"zone": "a"})(square)
    raise SystemExit("unsupported options must raise")
except NotImplementedError as exc:
    assert "label_selector" in str(exc)

print("PASSED tasks_and_refs")
