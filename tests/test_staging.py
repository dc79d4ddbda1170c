"""Tasks staged behind a running one in its task process: blocking, cancel and crash lose nothing.

Each test first runs the functions briefly, so the agent knows them as short and stages work
behind them (``scaler/worker/agent.py``), on one worker with one slot.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable

import pytest

from scaler import Client, LocalCluster
from scaler.errors import TaskCancelledError, WorkerCrashedError
from tests.conftest import wait_workers


def step(seconds: float, tag: int) -> int:
    time.sleep(seconds)
    return tag


def parent(warm: bool) -> int:
    if warm:
        return 0
    with Client() as inner:
        child = inner.submit(step, 0.0, 7)
        time.sleep(0.03)
        return int(child.result(60)) + 1


def crash(warm: bool) -> int:
    if not warm:
        os.kill(os.getpid(), signal.SIGKILL)
    return 0


def warm_up(client: Client, function: Callable[..., int], *args: object) -> None:
    for _ in range(5):
        client.submit(function, *args).result(30)


@pytest.fixture
def one_slot(make_cluster: Callable[..., LocalCluster]) -> Client:
    cluster = make_cluster(n_workers=1)
    client = Client(cluster.address)
    wait_workers(client, 1)
    return client


def test_a_parent_blocking_on_its_subtask_gets_the_staged_subtask_back(one_slot: Client) -> None:
    with one_slot as client:
        warm_up(client, parent, True)
        warm_up(client, step, 0.0, 0)
        parents = [client.submit(parent, False) for _ in range(4)]
        assert [f.result(60) for f in parents] == [8, 8, 8, 8]


def test_a_cancelled_staged_task_never_runs_and_the_queue_moves_on(one_slot: Client) -> None:
    with one_slot as client:
        warm_up(client, step, 0.01, 0)
        first = client.submit(step, 0.05, 1)
        staged = client.submit(step, 0.05, 2)
        after = client.submit(step, 0.0, 3)
        assert staged.cancel()
        with pytest.raises(TaskCancelledError):
            staged.result(30)
        assert (first.result(30), after.result(30)) == (1, 3)
        wait_until_quiet = client.submit(step, 0.0, 4).result(30)
        assert wait_until_quiet == 4
        assert client.scheduler_status().status["total_retried"] == 0


def test_a_crash_does_not_lose_the_task_staged_behind_it(one_slot: Client) -> None:
    with one_slot as client:
        warm_up(client, crash, True)
        crashing = client.options(max_retries=0).submit(crash, False)
        behind = [client.submit(crash, True) for _ in range(3)]
        with pytest.raises(WorkerCrashedError):
            crashing.result(30)
        assert [f.result(30) for f in behind] == [0, 0, 0]


def test_a_task_staged_behind_one_that_runs_long_is_taken_back(one_slot: Client) -> None:
    with one_slot as client:
        warm_up(client, step, 0.0, 0)
        long = client.submit(step, 12.0, 1)
        staged = client.submit(step, 0.0, 2)
        time.sleep(0.3)
        env = {k: v for k, v in os.environ.items() if k != "SCALER_PARENT_PID"}
        helper = subprocess.Popen([sys.executable, "-m", "scaler.worker.main", one_slot.address], env=env)
        try:
            started = time.monotonic()
            assert staged.result(30) == 2
            assert time.monotonic() - started < 10.0, "it ran on the new worker, not after the long task"
            assert not long.done()
            assert long.result(30) == 1
        finally:
            helper.terminate()
            helper.wait(10)


def test_force_cancelling_the_running_task_gives_back_the_one_staged_behind_it(one_slot: Client) -> None:
    with one_slot as client:
        warm_up(client, step, 0.0, 0)
        running = client.submit(step, 3.0, 1)
        staged = client.submit(step, 0.0, 2)
        time.sleep(0.05)
        assert running.cancel(force=True)
        assert staged.result(30) == 2
        assert client.scheduler_status().status["total_retried"] == 0, "the staged task never ran, so no retry"


def size_after(seconds: float, data: bytes) -> int:
    time.sleep(seconds)
    return len(data)


def test_large_messages_reach_a_busy_task_process_whole(one_slot: Client) -> None:
    with one_slot as client:
        warm_up(client, size_after, 0.0, b"")
        first = client.submit(size_after, 0.05, b"a" * 3_000_000)
        behind = [client.submit(size_after, 0.0, bytes([65 + i]) * 2_500_000) for i in range(3)]
        assert first.result(30) == 3_000_000
        assert [f.result(30) for f in behind] == [2_500_000] * 3
