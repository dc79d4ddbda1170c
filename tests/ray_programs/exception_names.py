# A Ray program: the ray.exceptions names a program catches when things fail, with Ray's hierarchy:
# a task's error, cancel, get timeout, a crashed worker process, a killed actor, a restarting actor,
# an actor or object whose owner died, a name already taken.
import os
import signal
import time

import ray

ray.init()
X = ray.exceptions

# Ray 2.60's class hierarchy, as user code relies on it.
SUBCLASSES = [
    (X.RayTaskError, X.RayError),
    (X.TaskCancelledError, X.RayError),
    (X.GetTimeoutError, X.RayError),
    (X.GetTimeoutError, TimeoutError),
    (X.WorkerCrashedError, X.RayError),
    (X.NodeDiedError, X.RayError),
    (X.RayActorError, X.RayError),
    (X.ActorDiedError, X.RayActorError),
    (X.ActorUnavailableError, X.RayActorError),
    (X.ObjectLostError, X.RayError),
    (X.OwnerDiedError, X.ObjectLostError),
    (X.ObjectFetchTimedOutError, X.ObjectLostError),
    (X.ObjectFreedError, X.ObjectLostError),
    (X.ObjectReconstructionFailedError, X.ObjectLostError),
    (X.ReferenceCountingAssertionError, X.ObjectLostError),
    (X.OutOfMemoryError, X.RayError),
    (X.RaySystemError, X.RayError),
    (X.ActorAlreadyExistsError, X.RayError),
    (X.ActorAlreadyExistsError, ValueError),
]
for sub, base in SUBCLASSES:
    assert issubclass(sub, base), f"{sub.__name__} must derive from {base.__name__}"
for sub, other in [
    (X.ActorUnavailableError, X.ActorDiedError),
    (X.OwnerDiedError, X.RayActorError),
    (X.NodeDiedError, X.WorkerCrashedError),
    (X.WorkerCrashedError, X.RayActorError),
]:
    assert not issubclass(sub, other), f"{sub.__name__} must not derive from {other.__name__}"


def first_error(call, seconds=5.0):
    """The error ``call`` raises; Ray learns of a death asynchronously, so retry until it does."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            value = call()
        except Exception as exc:
            return exc
        if time.monotonic() > deadline:
            raise SystemExit(f"still no error after {seconds}s (got {value!r})")
        time.sleep(0.05)


@ray.remote
def fail():
    raise KeyError("task failure")


@ray.remote
def nap(seconds):
    time.sleep(seconds)
    return seconds


@ray.remote(max_retries=0)
def crash():
    os._exit(1)


@ray.remote
def put_here():
    return [ray.put("owned by a task's worker"), os.getpid()]


@ray.remote
class Owner:
    def make(self):
        return [ray.put("owned by an actor")]

    def pid(self):
        return os.getpid()


@ray.remote
class Child:
    def ping(self):
        return "pong"


@ray.remote
def make_child():
    child = Child.remote()
    ray.get(child.ping.remote())
    return [child, os.getpid()]


@ray.remote(max_restarts=1)
class Phoenix:
    def ping(self):
        return "alive"

    def crash(self):
        os._exit(1)


try:
    ray.get(fail.remote())
    raise SystemExit("must raise")
except ray.exceptions.RayTaskError as exc:
    assert isinstance(exc, KeyError) and isinstance(exc, X.RayError)

slow = nap.remote(60)
time.sleep(1.0)
ray.cancel(slow, force=True)
try:
    ray.get(slow, timeout=30)
    raise SystemExit("must raise")
except ray.exceptions.TaskCancelledError:
    pass

try:
    ray.get(nap.remote(30), timeout=0.1)
    raise SystemExit("must raise")
except ray.exceptions.GetTimeoutError as exc:
    assert isinstance(exc, TimeoutError)

try:
    ray.get(crash.remote(), timeout=60)
    raise SystemExit("must raise")
except ray.exceptions.WorkerCrashedError:
    pass

killed = Owner.remote()
ray.get(killed.pid.remote())
ray.kill(killed)
try:
    raise first_error(lambda: ray.get(killed.pid.remote(), timeout=30))
except ray.exceptions.ActorDiedError as exc:
    assert isinstance(exc, X.RayActorError)

phoenix = Phoenix.remote()
assert ray.get(phoenix.ping.remote()) == "alive"
try:
    ray.get(phoenix.crash.remote(), timeout=60)
    raise SystemExit("must raise")
except ray.exceptions.ActorUnavailableError as exc:
    assert isinstance(exc, X.RayActorError) and not isinstance(exc, X.ActorDiedError)
assert ray.get(phoenix.ping.remote(), timeout=60) == "alive", "the actor restarted"
try:
    ray.get(phoenix.crash.remote(), timeout=60)
    raise SystemExit("must raise")
except ray.exceptions.ActorDiedError:
    pass

# Objects die with their owner: an actor killed, or a task's worker process SIGKILLed.
owner = Owner.remote()
[borrowed] = ray.get(owner.make.remote())
assert ray.get(borrowed) == "owned by an actor"
ray.kill(owner)
try:
    raise first_error(lambda: ray.get(borrowed, timeout=30))
except ray.exceptions.OwnerDiedError as exc:
    assert isinstance(exc, X.ObjectLostError) and borrowed.hex() in str(exc), str(exc)

owner = Owner.remote()
[borrowed] = ray.get(owner.make.remote())
os.kill(ray.get(owner.pid.remote()), signal.SIGKILL)
try:
    raise first_error(lambda: ray.get(borrowed, timeout=30))
except ray.exceptions.ObjectLostError as exc:
    assert isinstance(exc, X.OwnerDiedError), type(exc).__mro__

borrowed, worker_pid = ray.get(put_here.remote())
os.kill(worker_pid, signal.SIGKILL)
try:
    raise first_error(lambda: ray.get(borrowed, timeout=30))
except ray.exceptions.OwnerDiedError:
    pass

# An actor dies with the process that created it (it is not detached).
child, parent_pid = ray.get(make_child.remote())
assert ray.get(child.ping.remote()) == "pong"
os.kill(parent_pid, signal.SIGKILL)
try:
    raise first_error(lambda: ray.get(child.ping.remote(), timeout=30))
except ray.exceptions.ActorDiedError:
    pass

named = Owner.options(name="taken").remote()
try:
    Owner.options(name="taken").remote()
    raise SystemExit("must raise")
except ray.exceptions.ActorAlreadyExistsError as exc:
    assert isinstance(exc, ValueError)
ray.kill(named)
print("PASSED exception_names")
