"""Cancel: queued tasks are dropped, running ones interrupted, force kills the process."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from scaler import Client, LocalCluster, TaskCancelledError
from tests.conftest import wait_until, wait_workers


def busy_loop(seconds: float) -> str:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass
    return "finished"


def ignore_interrupts(seconds: float) -> str:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            time.sleep(0.05)
        except BaseException:
            pass
    return "finished"


def test_cancel_queued_running_and_forced(make_cluster: Callable[..., LocalCluster]) -> None:
    cluster = make_cluster(n_workers=1, worker_args=("--cancel-grace", "1"))
    with Client(cluster.address) as client:
        wait_workers(client, 1)
        running = client.submit(busy_loop, 30)
        queued = [client.submit(busy_loop, 30) for _ in range(3)]
        wait_until(lambda: client.scheduler_status().status.get("tasks_running", 0) >= 1)
        assert queued[0].cancel(), queued[0].exception(0) if queued[0].done() else None
        with pytest.raises(TaskCancelledError):
            queued[0].result(1)
        assert queued[0].cancelled()
        start = time.monotonic()
        client.cancel(running)
        with pytest.raises(TaskCancelledError):
            running.result(1)
        client.cancel(queued[1:])
        assert client.submit(pow, 2, 4).result(15) == 16
        assert time.monotonic() - start < 10, "the interrupted task must stop"
        stubborn = client.submit(ignore_interrupts, 30)
        wait_until(lambda: client.scheduler_status().status.get("tasks_running", 0) >= 1)
        stubborn.cancel(force=True)
        assert client.submit(pow, 2, 5).result(15) == 32
        wait_until(lambda: client.scheduler_status().status["tasks"] == 0, 15)
        status = client.scheduler_status().status
        assert status["total_cancelled"] == 5 and status.get("total_done", 0) == 2


def test_non_forced_cancel_of_a_stubborn_task_kills_after_grace(make_cluster: Callable[..., LocalCluster]) -> None:
    cluster = make_cluster(n_workers=1, worker_args=("--cancel-grace", "1"))
    with Client(cluster.address) as client:
        stubborn = client.submit(ignore_interrupts, 60)
        wait_until(lambda: client.scheduler_status().status.get("tasks_running", 0) >= 1)
        stubborn.cancel()
        start = time.monotonic()
        assert client.submit(pow, 3, 3).result(20) == 27
        assert time.monotonic() - start < 15
