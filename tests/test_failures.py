"""Worker and task-process deaths, retries, timeouts, memory limits: nothing is lost or doubled."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from scaler import Client, LocalCluster, MemoryLimitError, TaskTimeoutError, WorkerCrashedError
from tests.conftest import wait_until, wait_workers


def record_and_sleep(marker_dir: str, name: str, seconds: float) -> str:
    Path(marker_dir, f"{name}.{os.getpid()}.{time.monotonic_ns()}").touch()
    time.sleep(seconds)
    return name


def kill_my_worker() -> None:
    os.kill(os.getppid(), signal.SIGKILL)


def kill_myself() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def hog_memory(mb: int) -> int:
    block = bytearray(mb << 20)
    for i in range(0, len(block), 4096):
        block[i] = 1
    time.sleep(5)
    return len(block)


def test_sigkilled_worker_task_completes_elsewhere_exactly_once(
    make_cluster: Callable[..., LocalCluster], tmp_path: Path
) -> None:
    cluster = make_cluster(n_workers=2)
    with Client(cluster.address) as client:
        wait_workers(client, 2)
        futures = [client.submit(record_and_sleep, str(tmp_path), f"t{i}", 1.0) for i in range(2)]
        wait_until(lambda: len(list(tmp_path.iterdir())) >= 2)
        victim = cluster.workers[0]
        victim.send_signal(signal.SIGKILL)
        assert sorted(f.result(30) for f in futures) == ["t0", "t1"]
        status = client.scheduler_status().status
        assert status["total_retried"] >= 1
        assert status["total_done"] == 2, "each task must complete exactly once"
        assert status["tasks"] == 0


def test_task_that_always_kills_its_worker_fails_after_max_retries(make_cluster: Callable[..., LocalCluster]) -> None:
    cluster = make_cluster(n_workers=4)
    with Client(cluster.address) as client:
        wait_workers(client, 4)
        future = client.options(max_retries=2).submit(kill_my_worker)
        with pytest.raises(WorkerCrashedError, match=r"task .*kill_my_worker.* died 3 times \(max_retries=2\)"):
            future.result(60)
        assert client.submit(pow, 2, 5).result(30) == 32
        assert client.scheduler_status().status["workers"] == 1


def test_task_process_crash_is_retried_then_fails(client: Client) -> None:
    with pytest.raises(WorkerCrashedError, match="kill_myself"):
        client.options(max_retries=1).submit(kill_myself).result(30)
    assert client.submit(pow, 3, 2).result(10) == 9, "the worker replaced its task process"


def test_timeout_kills_the_task(client: Client) -> None:
    start = time.monotonic()
    with pytest.raises(TaskTimeoutError, match="sleep"):
        client.options(timeout=0.5).submit(time.sleep, 30).result(20)
    assert time.monotonic() - start < 10
    assert client.submit(pow, 2, 2).result(10) == 4


def test_memory_limit_kills_the_task(make_cluster: Callable[..., LocalCluster]) -> None:
    cluster = make_cluster(n_workers=1, worker_args=("--task-memory-limit-mb", "150"))
    with Client(cluster.address) as client:
        with pytest.raises(MemoryLimitError):
            client.submit(hog_memory, 400).result(30)
        assert client.submit(pow, 2, 3).result(10) == 8


def test_application_errors_are_not_retried_unless_asked(client: Client, tmp_path: Path) -> None:
    def flaky(directory: str) -> int:
        runs = len(list(Path(directory).iterdir()))
        Path(directory, str(runs)).touch()
        if runs < 2:
            raise RuntimeError(f"attempt {runs}")
        return runs

    with pytest.raises(RuntimeError, match="attempt 0"):
        client.submit(flaky, str(tmp_path)).result(10)
    assert client.options(retry_exceptions=True, max_retries=3).submit(flaky, str(tmp_path)).result(10) == 2


def note_agent_and_sleep(marker_dir: str, seconds: float) -> int:
    """Mark this run with its agent's pid (the task process's parent), then sleep; return that pid."""
    Path(marker_dir, str(os.getppid())).touch()
    time.sleep(seconds)
    return os.getppid()


def test_hung_worker_is_dropped_after_the_peer_timeout_and_its_task_reruns_elsewhere(
    make_cluster: Callable[..., LocalCluster], tmp_path: Path
) -> None:
    cluster = make_cluster(n_workers=2, scheduler_args=("--peer-timeout", "3"))
    with Client(cluster.address) as client:
        wait_workers(client, 2)
        future = client.submit(note_agent_and_sleep, str(tmp_path), 2.0)
        marker = wait_until(lambda: next(tmp_path.iterdir(), None))
        hung = int(marker.name)
        assert hung in {w.pid for w in cluster.workers}
        os.kill(hung, signal.SIGSTOP)  # alive, connected, but silent: only the heartbeat timeout notices
        try:
            start = time.monotonic()
            rerun_on = future.result(30)
            assert rerun_on != hung and rerun_on in {w.pid for w in cluster.workers}
            assert time.monotonic() - start >= 2.5, "not before the 3 s peer timeout"
            status = client.scheduler_status().status
            assert status["workers"] == 1 and int(status["total_retried"]) >= 1 and status["total_done"] == 1
        finally:
            os.kill(hung, signal.SIGKILL)
