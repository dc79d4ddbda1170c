"""Async and threaded actors on a real local cluster: calls really overlap, up to the actor's limit.

Each test is a Ray program (the compat API, never the installed Ray) in its own process with its
own local cluster, so what the actor's process logs reaches the program's stderr as a user sees it.
Timing bounds are wide: a limit of N lets N one-second calls end in about one second, and the
bound sits far below the N seconds they would take one at a time.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest

PRELUDE = """
import asyncio, json, sys, threading, time
sys.modules["ray"] = None  # the compat API only: this never imports the installed Ray
from scaler.compat import ray
ray.init(num_cpus=2)

def report(**values):
    print("RESULT " + json.dumps(values), flush=True)
"""
WARNING_TEXT = "Blocking ray.get inside an async actor method"


def run(code: str, timeout: float = 180) -> tuple[dict[str, Any], str]:
    """Run a program; return what it reported and its stderr (its actors' processes write there too)."""
    env = dict(os.environ, SCALER_LOG_LEVEL="WARNING")
    result = subprocess.run(
        [sys.executable, "-c", PRELUDE + code], capture_output=True, text=True, timeout=timeout, env=env
    )
    assert result.returncode == 0, f"{result.stdout[-3000:]}\n{result.stderr[-5000:]}"
    lines = [line for line in result.stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, f"no result:\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}"
    return dict(json.loads(lines[-1][len("RESULT ") :])), result.stderr


@pytest.mark.timeout(240)
def test_a_threaded_actor_runs_max_concurrency_calls_at_once() -> None:
    values, _ = run(
        """
@ray.remote(max_concurrency=4)
class Sleeper:
    def nap(self, seconds):
        time.sleep(seconds)
        return threading.get_ident()

sleeper = Sleeper.remote()
ray.get(sleeper.nap.remote(0))  # the actor is up: its start is not timed
started = time.monotonic()
threads = ray.get([sleeper.nap.remote(1.0) for _ in range(4)])
report(elapsed=time.monotonic() - started, threads=len(set(threads)))
"""
    )
    assert values["threads"] == 4
    assert 0.9 <= values["elapsed"] < 3.0, values  # one at a time: 4 s


@pytest.mark.timeout(240)
def test_an_async_actor_runs_its_calls_concurrently_on_one_event_loop() -> None:
    values, _ = run(
        """
@ray.remote
class Napper:
    async def nap(self, seconds):
        await asyncio.sleep(seconds)
        return threading.get_ident()

napper = Napper.remote()
ray.get(napper.nap.remote(0))
started = time.monotonic()
threads = ray.get([napper.nap.remote(1.0) for _ in range(8)])
report(elapsed=time.monotonic() - started, threads=len(set(threads)))
"""
    )
    assert values["threads"] == 1  # one event loop thread
    assert 0.9 <= values["elapsed"] < 4.0, values  # one at a time: 8 s


@pytest.mark.timeout(240)
def test_a_plain_actor_still_runs_its_calls_one_at_a_time_in_submission_order() -> None:
    values, _ = run(
        """
@ray.remote
class Log:
    def __init__(self):
        self.entries, self.inside, self.most = [], 0, 0

    def add(self, i):
        self.inside += 1
        self.most = max(self.most, self.inside)
        time.sleep(0.01)
        self.entries.append(i)
        self.inside -= 1
        return i

    def state(self):
        return self.entries, self.most

log = Log.remote()
ray.get([log.add.remote(i) for i in range(30)])
entries, most = ray.get(log.state.remote())
report(entries=entries, most=most)
"""
    )
    assert values["entries"] == list(range(30))
    assert values["most"] == 1


@pytest.mark.timeout(240)
def test_cancelling_a_running_async_call_cancels_its_coroutine() -> None:
    values, _ = run(
        """
@ray.remote
class Waiter:
    def __init__(self):
        self.seen = []

    async def forever(self):
        try:
            await asyncio.sleep(600)
        except asyncio.CancelledError:
            self.seen.append("cancelled")
            raise

    async def seen_so_far(self):
        return self.seen

waiter = Waiter.remote()
ray.get(waiter.seen_so_far.remote())
ref = waiter.forever.remote()
time.sleep(1.0)
ray.cancel(ref)
try:
    ray.get(ref, timeout=60)
    error = None
except ray.exceptions.TaskCancelledError as exc:
    error = type(exc).__name__
deadline = time.monotonic() + 60
while not ray.get(waiter.seen_so_far.remote()) and time.monotonic() < deadline:
    time.sleep(0.05)
report(error=error, seen=ray.get(waiter.seen_so_far.remote()))
"""
    )
    assert values == {"error": "TaskCancelledError", "seen": ["cancelled"]}


@pytest.mark.timeout(240)
def test_a_blocking_get_inside_an_async_method_warns_once_per_actor() -> None:
    values, stderr = run(
        """
@ray.remote
def square(x):
    return x * x

@ray.remote
class Blocker:
    async def blocking(self, x):
        return ray.get(square.remote(x))

    async def awaiting(self, x):
        return await square.remote(x)

@ray.remote
class SyncActor:
    def blocking(self, x):
        return ray.get(square.remote(x))

blocker, plain = Blocker.remote(), SyncActor.remote()
report(
    awaited=ray.get(blocker.awaiting.remote(2)),
    blocked=ray.get([blocker.blocking.remote(3), blocker.blocking.remote(4)]),
    sync=ray.get(plain.blocking.remote(5)),
)
"""
    )
    assert values == {"awaited": 4, "blocked": [9, 16], "sync": 25}
    assert stderr.count(WARNING_TEXT) == 1, stderr[-4000:]


@pytest.mark.timeout(120)
def test_concurrency_options_are_checked_as_ray_does() -> None:
    values, _ = run(
        """
@ray.remote
class Plain:
    def ping(self):
        return "pong"

def refused(make):
    try:
        make()
    except ValueError as exc:
        return str(exc)
    return None

report(
    zero=refused(lambda: Plain.options(max_concurrency=0).remote()),
    in_order=refused(lambda: Plain.options(max_concurrency=2, allow_out_of_order_execution=False).remote()),
    group=refused(lambda: Plain.options(concurrency_groups={"io": 0}).remote()),
    fine=ray.get(Plain.options(max_concurrency=2, allow_out_of_order_execution=True).remote().ping.remote()),
)
"""
    )
    assert "max_concurrency" in values["zero"]
    assert "allow_out_of_order_execution" in values["in_order"]
    assert "io" in values["group"]
    assert values["fine"] == "pong"
