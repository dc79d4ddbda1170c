"""Cancel: queued tasks are dropped, running ones interrupted, force kills the process."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import psutil
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


def write_pid_and_wait(pid_file: str, seconds: float, deaf: bool = False) -> str:
    """Note this task process's pid, then wait cooperatively (or, if ``deaf``, ignoring SIGUSR1)."""
    if deaf:
        signal.signal(signal.SIGUSR1, signal.SIG_IGN)
    Path(pid_file + ".tmp").write_text(str(os.getpid()))
    os.replace(pid_file + ".tmp", pid_file)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        time.sleep(0.05)
    return "finished"


def started_pid(pid_file: Path) -> int:
    return int(wait_until(lambda: pid_file.is_file() and pid_file.read_text()))


def alive(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


# With a 60 s cancel grace, "stopped within a few seconds" can only mean interrupted (SIGUSR1)
# or killed at once (force), never the agent's kill after the grace.
LONG_GRACE = ("--death-timeout", "10", "--cancel-grace", "60")


def test_plain_cancel_interrupts_a_running_task_and_its_process_survives(
    make_cluster: Callable[..., LocalCluster], tmp_path: Path
) -> None:
    cluster = make_cluster(n_workers=1, worker_args=LONG_GRACE)
    with Client(cluster.address) as client:
        wait_workers(client, 1)
        running = client.submit(write_pid_and_wait, str(tmp_path / "pid"), 120)
        pid = started_pid(tmp_path / "pid")
        start = time.monotonic()
        client.cancel(running)
        with pytest.raises(TaskCancelledError):
            running.result(1)
        wait_until(lambda: client.scheduler_status().status["tasks"] == 0, 10)
        elapsed = time.monotonic() - start
        assert elapsed < 20, f"the interrupted task took {elapsed:.1f}s to stop (grace 60s: it was not interrupted)"
        assert alive(pid), "an interrupted task's process is not killed"
        assert client.submit(os.getpid).result(15) == pid, "the same task process serves the next task"
        status = client.scheduler_status().status
        assert status["total_cancelled"] == 1 and status.get("total_done", 0) == 1


def test_force_kills_a_task_deaf_to_interrupts_and_plain_cancel_waits_for_the_grace(
    make_cluster: Callable[..., LocalCluster], tmp_path: Path
) -> None:
    cluster = make_cluster(n_workers=1, worker_args=LONG_GRACE)
    with Client(cluster.address) as client:
        wait_workers(client, 1)
        forced = client.submit(write_pid_and_wait, str(tmp_path / "forced"), 120, deaf=True)
        forced_pid = started_pid(tmp_path / "forced")
        start = time.monotonic()
        client.cancel(forced, force=True)
        wait_until(lambda: client.scheduler_status().status["tasks"] == 0, 10)
        elapsed = time.monotonic() - start
        assert elapsed < 20, f"a forced cancel took {elapsed:.1f}s (grace 60s: the process was not killed at once)"
        wait_until(lambda: not alive(forced_pid), 5)
        assert client.submit(os.getpid).result(15) != forced_pid

        polite = client.submit(write_pid_and_wait, str(tmp_path / "polite"), 120, deaf=True)
        polite_pid = started_pid(tmp_path / "polite")
        client.cancel(polite)
        with pytest.raises(TaskCancelledError):
            polite.result(1)
        probe = client.submit(os.getpid)
        time.sleep(2.5)
        assert alive(polite_pid), "a plain cancel only interrupts: the process lives until the grace ends"
        assert not probe.done(), "the worker's only slot is still taken by the task that ignores the interrupt"
        assert client.scheduler_status().status.get("tasks_running", 0) == 1
        client.cancel(polite, force=True)  # escalates: a second cancel with force kills it now
        wait_until(lambda: not alive(polite_pid), 5)
        assert probe.result(15) not in (forced_pid, polite_pid)
        wait_until(lambda: client.scheduler_status().status["tasks"] == 0, 10)
        assert client.scheduler_status().status["total_cancelled"] == 2


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
