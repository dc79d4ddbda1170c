# A Ray program: refs handed back inside a task's result stay valid while the caller holds them.
# A task calls another task's .remote() or ray.put() and returns the ref (alone, in a list, in a dict);
# the task's own refs go when it returns, so the driver's ray.get must not race their release.
import gc
import time

import ray

ray.init()

ROUNDS = 40


@ray.remote
def leaf(x):
    return x * 10


@ray.remote
def slow_leaf(x):
    time.sleep(0.05)
    return x + 1000


@ray.remote
def returns_ref(x):
    return leaf.remote(x)


@ray.remote
def returns_pending_ref(x):
    return slow_leaf.remote(x)


@ray.remote
def returns_put(x):
    return ray.put(x + 1)


@ray.remote
def returns_nested(x):
    return [leaf.remote(x), {"put": ray.put(-x), "deeper": [slow_leaf.remote(x)]}]


@ray.remote
def passes_back(refs):
    return refs[0]


@ray.remote
class Keeper:
    def make(self, x):
        return ray.put(x * 2)

    def delegate(self, x):
        return [leaf.remote(x)]


for round_ in range(ROUNDS):
    outer = [returns_ref.remote(round_), returns_pending_ref.remote(round_), returns_put.remote(round_)]
    inner = ray.get(outer)
    assert all(isinstance(ref, ray.ObjectRef) for ref in inner), inner
    gc.collect()
    assert ray.get(inner) == [round_ * 10, round_ + 1000, round_ + 1], (round_, inner)

    first, rest = ray.get(returns_nested.remote(round_))
    gc.collect()
    assert ray.get(first) == round_ * 10
    assert ray.get(rest["put"]) == -round_
    assert ray.get(rest["deeper"]) == [round_ + 1000]

# Batches: many results in flight at once, fetched after the tasks' own refs are long gone.
batch = [returns_ref.remote(i) for i in range(ROUNDS)] + [returns_put.remote(i) for i in range(ROUNDS)]
time.sleep(0.5)
gc.collect()
inner = ray.get(batch)
del batch
gc.collect()
time.sleep(0.2)
assert ray.get(inner) == [i * 10 for i in range(ROUNDS)] + [i + 1 for i in range(ROUNDS)]

# A ref the task received nested in its arguments, handed back after the driver dropped its own.
held = ray.put("kept")
back = passes_back.remote([held])
del held
gc.collect()
assert ray.get(ray.get(back)) == "kept"

# An actor method hands back refs it made the same way.
keeper = Keeper.remote()
for round_ in range(ROUNDS // 4):
    made = ray.get(keeper.make.remote(round_))
    (delegated,) = ray.get(keeper.delegate.remote(round_))
    gc.collect()
    assert ray.get([made, delegated]) == [round_ * 2, round_ * 10]

print("PASSED result_refs")
