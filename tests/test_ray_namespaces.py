"""Ray namespaces across jobs: two Ray programs on one scheduler keep their named actors apart.

Each job here is its own process (a Ray program calling ``ray.init(address=...)``) on one real
cluster, as unrelated programs sharing a scheduler are. A job without ``ray.init(namespace=...)``
gets an anonymous namespace of its own, so two jobs may both name an actor "counter" and each finds
its own; jobs that name one namespace share its actors, detached ones outliving their creator.
Tasks, nested tasks and actor methods run in the namespace of the job that submitted them, though
the task processes running them are shared by both jobs (one worker, one slot).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from scaler import LocalCluster, LocalClusterConfig

PRELUDE = """
import json, sys
sys.modules["ray"] = None  # the compat API only: this never imports the installed Ray
from scaler.compat import ray

@ray.remote
class Counter:
    def __init__(self, start):
        self.value = start

    def get(self):
        return self.value

    def namespace(self):
        return ray.get_runtime_context().namespace

    def find(self, name):
        return ray.get(ray.get_actor(name).get.remote())


@ray.remote
def seen_from_task(name):
    return ray.get_runtime_context().namespace, ray.get(ray.get_actor(name).get.remote())


@ray.remote
def seen_from_nested_task(name):
    return ray.get(seen_from_task.remote(name))


def found(name, namespace=None):
    try:
        return ray.get(ray.get_actor(name, namespace=namespace).get.remote())
    except ValueError:
        return None


def report(label, **values):
    print(label, json.dumps(values), flush=True)


def wait_for_go():
    if sys.stdin.readline().strip() != "GO":
        raise SystemExit("the test ended early")
"""

ANONYMOUS_JOB = (
    PRELUDE
    + """
mine, theirs = int(sys.argv[2]), int(sys.argv[3])
ray.init(address=sys.argv[1])
counter = Counter.options(name="counter").remote(mine)
only = Counter.options(name=f"only-{mine}").remote(mine)
namespace = ray.get_runtime_context().namespace
report("READY", namespace=namespace, counter=ray.get(counter.get.remote()))
wait_for_go()  # both jobs' actors exist now
report(
    "SEEN",
    namespace=namespace,
    counter=found("counter"),
    theirs=found(f"only-{theirs}"),
    task=ray.get(seen_from_task.remote("counter")),
    nested=ray.get(seen_from_nested_task.remote("counter")),
    actor_namespace=ray.get(only.namespace.remote()),
    actor_finds=ray.get(only.find.remote("counter")),
)
"""
)

SHARED_CREATOR = (
    PRELUDE
    + """
ray.init(address=sys.argv[1], namespace=sys.argv[2])
counter = Counter.options(name="counter").remote(7)
keeper = Counter.options(name="keeper", lifetime="detached").remote(9)
report("READY", counter=ray.get(counter.get.remote()), keeper=ray.get(keeper.get.remote()))
wait_for_go()
"""
)

SHARED_JOINER = (
    PRELUDE
    + """
ray.init(address=sys.argv[1], namespace=sys.argv[2])
try:
    Counter.options(name="counter").remote(8)
    taken = False
except ray.exceptions.ActorAlreadyExistsError:
    taken = True
report(
    "SEEN",
    namespace=ray.get_runtime_context().namespace,
    counter=found("counter"),
    taken=taken,
    task=ray.get(seen_from_task.remote("counter")),
    nested=ray.get(seen_from_nested_task.remote("keeper")),
)
"""
)

LATER_JOB = (
    PRELUDE
    + """
ray.init(address=sys.argv[1])


@ray.remote
def keeper_from_task(namespace):
    return found("keeper", namespace)


import time

deadline = time.monotonic() + 20  # the creator's exit may reach the scheduler a moment after this job starts
while found("counter", sys.argv[2]) is not None and time.monotonic() < deadline:
    time.sleep(0.1)
dead_name = found("counter", sys.argv[2])
reused = ray.get(Counter.options(name="counter", namespace=sys.argv[2]).remote(11).get.remote())  # its name is free
report(
    "SEEN",
    anonymous=found("keeper"),
    named=found("keeper", sys.argv[2]),
    from_task=ray.get(keeper_from_task.remote(sys.argv[2])),
    anonymous_from_task=ray.get(keeper_from_task.remote(None)),
    dead_name=dead_name,
    reused=reused,
)
"""
)


@pytest.fixture(scope="module")
def address() -> Iterator[str]:
    """One worker with one slot, so the jobs' tasks share its task processes (actors take none)."""
    config = LocalClusterConfig(scheduler_args=("--peer-timeout", "5"), worker_args=("--death-timeout", "10"))
    with LocalCluster(n_workers=1, capabilities="cpu=1", config=config) as cluster:
        yield cluster.address


class Job:
    """A Ray program in its own process, reporting ``LABEL {json}`` lines and waiting for ``GO``."""

    def __init__(self, code: str, *args: str) -> None:
        env = dict(os.environ, SCALER_LOG_LEVEL="WARNING")
        self.process = subprocess.Popen(
            [sys.executable, "-c", code, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )

    def read(self, label: str) -> dict[str, Any]:
        if self.process.stdout is None:
            raise AssertionError("no stdout pipe")
        line = self.process.stdout.readline()
        if not line.startswith(label + " "):
            self.process.kill()
            _, err = self.process.communicate(timeout=30)
            raise AssertionError(f"expected {label}, got {line!r}:\n{err[-4000:]}")
        return dict(json.loads(line[len(label) + 1 :]))

    def go(self) -> None:
        if self.process.stdin is None:
            raise AssertionError("no stdin pipe")
        self.process.stdin.write("GO\n")
        self.process.stdin.flush()

    def finish(self) -> None:
        _, err = self.process.communicate(timeout=120)
        assert self.process.returncode == 0, err[-4000:]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.communicate(timeout=30)


@contextmanager
def job(code: str, *args: str) -> Iterator[Job]:
    started = Job(code, *args)
    try:
        yield started
    finally:
        started.stop()


@pytest.mark.timeout(240)
def test_two_jobs_without_a_namespace_each_see_only_their_own_named_actors(address: str) -> None:
    with job(ANONYMOUS_JOB, address, "1", "2") as first, job(ANONYMOUS_JOB, address, "2", "1") as second:
        ready = [first.read("READY"), second.read("READY")]
        assert [r["counter"] for r in ready] == [1, 2]  # both named theirs "counter"
        namespaces = [r["namespace"] for r in ready]
        assert namespaces[0] != namespaces[1]
        first.go()
        second.go()
        for each, mine, namespace in ((first, 1, namespaces[0]), (second, 2, namespaces[1])):
            seen = each.read("SEEN")
            each.finish()
            assert seen["namespace"] == namespace
            assert seen["counter"] == mine
            assert seen["theirs"] is None  # the other job's anonymous namespace is out of sight
            assert seen["task"] == [namespace, mine]
            assert seen["nested"] == [namespace, mine]
            assert seen["actor_namespace"] == namespace
            assert seen["actor_finds"] == mine


@pytest.mark.timeout(240)
def test_jobs_naming_one_namespace_share_its_actors_and_detached_ones_outlive_their_job(address: str) -> None:
    with job(SHARED_CREATOR, address, "shared") as creator:
        assert creator.read("READY") == {"counter": 7, "keeper": 9}
        with job(SHARED_JOINER, address, "shared") as joiner:
            seen = joiner.read("SEEN")
            joiner.finish()
        assert seen == {
            "namespace": "shared",
            "counter": 7,
            "taken": True,
            "task": ["shared", 7],
            "nested": ["shared", 9],
        }
        creator.go()
        creator.finish()
    with job(LATER_JOB, address, "shared") as later:
        seen = later.read("SEEN")
        later.finish()
    # The creator's non-detached "counter" died with it, and its name with it (Ray frees a dead actor's name).
    assert seen == {
        "anonymous": None,
        "named": 9,
        "from_task": 9,
        "anonymous_from_task": None,
        "dead_name": None,
        "reused": 11,
    }


CHOSEN_AFTER_SCALER_INIT = """
import sys
sys.modules["ray"] = None
from scaler.compat import ray
from scaler.compat.ray import scaler_init

scaler_init(address=sys.argv[1])
before = ray.get_runtime_context().namespace
ray.init(namespace="picked")  # shapes no cluster, so a Ray program below scaler_init may name its namespace
refusals = []
for call in (
    lambda: ray.init(namespace=""),
    lambda: ray.get_actor("x", namespace=""),
    lambda: ray.get_actor("x", namespace=3),
    lambda: ray.remote(num_cpus=0)(type("A", (), {})).options(name="a", namespace=""),
):
    try:
        call()
        refusals.append(None)
    except (TypeError, ValueError) as exc:
        refusals.append(type(exc).__name__)
print(before != "anonymous" and len(before) == 36, ray.get_runtime_context().namespace, refusals)
"""


@pytest.mark.timeout(120)
def test_a_namespace_is_checked_as_ray_does_and_may_be_named_after_scaler_init(address: str) -> None:
    env = dict(os.environ, SCALER_LOG_LEVEL="WARNING")
    result = subprocess.run(
        [sys.executable, "-c", CHOSEN_AFTER_SCALER_INIT, address], capture_output=True, text=True, env=env, timeout=100
    )
    assert result.returncode == 0, result.stderr[-4000:]
    assert result.stdout.split("\n")[0] == "True picked ['ValueError', 'ValueError', 'TypeError', 'ValueError']"
