# A Ray program: actors, ordering, handles in tasks and actors, named and detached actors, kill,
# restarts and retries, runtime_env, generator methods, exit_actor, ActorPool.
import os
import subprocess
import sys
import tempfile
import time

import ray

context = ray.init(runtime_env={"env_vars": {"INIT_FLAG": "from-init"}})
ADDRESS = context.address_info["address"]


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

    def countdown(self, n):
        for i in range(n, 0, -1):  # noqa: UP028 - Ray 2.60 sends into what `yield from` delegates to
            yield i

    def slow(self, seconds):
        time.sleep(seconds)
        return "slow done"


@ray.remote
class EnvReader:
    def read(self, name):
        return os.environ.get(name)

    def leave(self):
        ray.actor.exit_actor()


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
stream = counter.countdown.remote(3)
assert isinstance(stream, ray.ObjectRefGenerator), "generator methods stream by default, as in Ray 2.60"
assert [ray.get(ref) for ref in stream] == [3, 2, 1]
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

with_env = EnvReader.options(runtime_env={"env_vars": {"ACTOR_FLAG": "yes"}}).remote()
assert ray.get(with_env.read.remote("ACTOR_FLAG")) == "yes", "an actor's runtime_env applies in its process"
assert ray.get(with_env.read.remote("INIT_FLAG")) == "from-init", "ray.init(runtime_env=...) applies to actors"
plain = EnvReader.remote()
assert ray.get(plain.read.remote("ACTOR_FLAG")) is None, "one actor's runtime_env does not leak to another"
assert ray.get(plain.read.remote("INIT_FLAG")) == "from-init"
queued_behind = plain.read.remote("INIT_FLAG")
try:
    ray.get(plain.leave.remote(), timeout=60)
    raise SystemExit("the call that runs exit_actor() must see the actor die")
except ray.exceptions.RayActorError:
    pass
try:
    ray.get(plain.read.remote("INIT_FLAG"), timeout=60)
    raise SystemExit("an actor that called exit_actor() must be dead")
except ray.exceptions.ActorDiedError:
    pass
assert ray.get(queued_behind, timeout=60) == "from-init", "calls submitted before exit_actor() still ran"

# A second driver creates a detached actor and exits; the actor outlives it and keeps its state.
SECOND_DRIVER = """
import sys
from scaler.compat import ray
ray.init(address=sys.argv[1], namespace="tests")
@ray.remote
class Keeper:
    def __init__(self):
        self.count = 0
    def bump(self):
        self.count += 1
        return self.count
keeper = Keeper.options(name="keeper", lifetime="detached").remote()
print(ray.get(keeper.bump.remote()))
"""
second = subprocess.run([sys.executable, "-c", SECOND_DRIVER, ADDRESS], capture_output=True, text=True, timeout=120)
assert second.returncode == 0 and second.stdout.split() == ["1"], second.stderr[-2000:]
keeper = ray.get_actor("keeper", namespace="tests")
assert ray.get(keeper.bump.remote(), timeout=60) == 2, "a detached actor outlives the driver that made it"
ray.kill(keeper)

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
running = victim.slow.remote(30)
pending = [victim.add.remote(1) for _ in range(3)]
time.sleep(0.5)
ray.kill(victim)
for ref in [running, *pending, victim.add.remote(1)]:
    try:
        ray.get(ref, timeout=30)
        raise SystemExit("calls running, queued or made after ray.kill must fail")
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


@ray.remote(max_restarts=1, max_task_retries=1)
class Survivor:
    def crash_once(self, directory):
        if not os.listdir(directory):
            open(os.path.join(directory, "crashed"), "w").close()
            os._exit(1)
        return "retried"


survivor = Survivor.remote()
assert ray.get(survivor.crash_once.remote(tempfile.mkdtemp()), timeout=90) == "retried", (
    "max_task_retries re-runs a call whose actor process died, on the restarted actor"
)

try:
    Counter(1)
    raise SystemExit("actors cannot be instantiated directly")
except TypeError:
    pass


@ray.remote
def later(value, seconds):
    time.sleep(seconds)
    return value


@ray.remote
class Log:
    def __init__(self):
        self.items = []

    def add(self, item):
        self.items.append(item)

    def read(self):
        return list(self.items)


log = Log.remote()
log.add.remote(later.remote(1, 0.6))
log.add.remote(2)
log.add.remote(later.remote(3, 0.3))
log.add.remote(4)
assert ray.get(log.read.remote(), timeout=60) == [1, 2, 3, 4], "a caller's calls run in the order made"
print("PASSED actors")
