# A Ray program: actors, ordering, handles in tasks and actors, named actors, kill, ActorPool.
import os
import time

import ray

ray.init()


@ray.remote
class Counter:
    def __init__(self, start=0):
        self.value = start
        self.log = []

    def add(self, amount):
        self.value += amount
        self.log.append(amount)
        return self.value

    def history(self):
        return list(self.log)

    @ray.method(num_returns=2)
    def both(self):
        return self.value, len(self.log)

    def where(self):
        return os.getpid(), ray.get_runtime_context().get_actor_id()


@ray.remote
def bump(counter, n):
    return ray.get(counter.add.remote(n))


@ray.remote
class Relay:
    def __init__(self, counter):
        self.counter = counter

    def forward(self, n):
        return ray.get(self.counter.add.remote(n))


@ray.remote
class Broken:
    def __init__(self):
        raise ValueError("constructor failed")

    def ping(self):
        return "pong"


@ray.remote
class Doubler:
    def double(self, x):
        time.sleep(0.05)
        return 2 * x


counter = Counter.remote(10)
results = ray.get([counter.add.remote(i) for i in range(20)])
assert results == [10 + sum(range(i + 1)) for i in range(20)], "calls run one at a time in order"
assert ray.get(counter.history.remote()) == list(range(20))
value_ref, count_ref = counter.both.remote()
assert ray.get(value_ref) == 200 and ray.get(count_ref) == 20
pids = {ray.get(counter.where.remote())[0] for _ in range(5)}
assert len(pids) == 1, "an actor lives in one process"
assert ray.get(counter.where.remote())[1]

assert ray.get(bump.remote(counter, 5)) == 205, "handles can be passed to tasks"
relay = Relay.remote(counter)
assert ray.get(relay.forward.remote(1)) == 206, "and to other actors"

named = Counter.options(name="shared", namespace="tests").remote(100)
again = ray.get_actor("shared", namespace="tests")
assert ray.get(again.add.remote(1)) == 101
same = Counter.options(name="shared", namespace="tests", get_if_exists=True).remote(0)
assert ray.get(same.add.remote(1)) == 102
try:
    ray.get_actor("missing", namespace="tests")
    raise SystemExit("unknown actor names must fail")
except ValueError:
    pass

pool = ray.util.ActorPool([Doubler.remote() for _ in range(2)])
assert list(pool.map(lambda actor, v: actor.double.remote(v), range(8))) == [2 * v for v in range(8)]
assert sorted(pool.map_unordered(lambda actor, v: actor.double.remote(v), range(6))) == [0, 2, 4, 6, 8, 10]
pool.submit(lambda actor, v: actor.double.remote(v), 21)
assert pool.has_next() and pool.get_next() == 42 and not pool.has_next()

broken = Broken.remote()
try:
    ray.get(broken.ping.remote(), timeout=30)
    raise SystemExit("calls to an actor whose constructor failed must fail")
except ray.exceptions.RayActorError:
    pass

victim = Counter.remote()
assert ray.get(victim.add.remote(1)) == 1
ray.kill(victim)
try:
    ray.get(victim.add.remote(1), timeout=30)
    raise SystemExit("calls to a killed actor must fail")
except ray.exceptions.ActorDiedError:
    pass


@ray.remote(max_restarts=1)
class Phoenix:
    def pid(self):
        return os.getpid()

    def crash(self):
        os._exit(1)


phoenix = Phoenix.remote()
first_pid = ray.get(phoenix.pid.remote())
try:
    ray.get(phoenix.crash.remote(), timeout=60)
    raise SystemExit("a call whose actor process died must fail")
except ray.exceptions.RayActorError:
    pass
second_pid = ray.get(phoenix.pid.remote(), timeout=60)
assert second_pid != first_pid, "max_restarts=1 re-creates the actor in a new process"

try:
    Counter(1)
    raise SystemExit("actors cannot be instantiated directly")
except TypeError:
    pass
print("PASSED actors")
