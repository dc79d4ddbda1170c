"""Shared fixtures: real scheduler and worker processes on 127.0.0.1, torn down after use."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from scaler import Client, LocalCluster, LocalClusterConfig

FAST = LocalClusterConfig(scheduler_args=("--peer-timeout", "5"), worker_args=("--death-timeout", "10"))


def wait_until(predicate: Callable[[], Any], timeout: float = 20.0, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s")


def wait_workers(client: Client, n: int, timeout: float = 20.0) -> None:
    wait_until(lambda: client.scheduler_status().status["workers"] >= n, timeout)


@pytest.fixture(scope="module")
def shared_cluster() -> Iterator[LocalCluster]:
    with LocalCluster(n_workers=2, config=FAST) as cluster:
        yield cluster


@pytest.fixture
def client(shared_cluster: LocalCluster) -> Iterator[Client]:
    with Client(shared_cluster.address) as c:
        wait_workers(c, 2)
        yield c


@pytest.fixture
def make_cluster() -> Iterator[Callable[..., LocalCluster]]:
    made: list[LocalCluster] = []

    def make(n_workers: int = 2, capabilities: str = "cpu=1", **config: Any) -> LocalCluster:
        base = {"scheduler_args": FAST.scheduler_args, "worker_args": FAST.worker_args, **config}
        cluster = LocalCluster(n_workers, capabilities, LocalClusterConfig(**base))
        made.append(cluster)
        return cluster

    yield make
    for cluster in made:
        cluster.shutdown()


def run_script(
    code: str, *args: str, timeout: float = 60.0, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``code`` as a user's script (its own ``__main__``) in a fresh interpreter."""
    full_env = dict(os.environ, SCALER_LOG_LEVEL="WARNING", **(env or {}))
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=timeout, env=full_env
    )
