"""The local provider counts a unit's workers, not their task processes.

A worker's task processes are forks of it, so they show the worker's command line, tags included.
Counted as the unit's processes, they were terminated beside their worker on scale-down (each worker
then logged its task processes' pipes as failed) and listed among the unit's pids.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import psutil
from scaler.adapters.identity import Identity
from scaler.adapters.launch import LaunchBuilder
from scaler.adapters.local.provider import LocalProvider
from scaler.adapters.provider import WorkerGroup
from scaler.adapters.spec import ProviderContext

from scaler import Client, LocalCluster
from tests.conftest import wait_until

GROUP = WorkerGroup("cpu", "cpu=2", workers_per_unit=1, min_units=0, max_units=1)


def test_a_units_processes_are_its_workers_not_their_task_processes(
    make_cluster: Callable[..., LocalCluster], tmp_path: Path
) -> None:
    cluster = make_cluster(n_workers=0)
    identity = Identity("forks", "local")
    context = ProviderContext(identity, tmp_path, cluster.address, LaunchBuilder(identity, cluster.address))
    provider = LocalProvider(context, ("--death-timeout", "20"))
    (unit,) = asyncio.run(provider.launch(GROUP, 1, "r1"))
    try:
        with Client(cluster.address) as client:
            wait_until(lambda: client.scheduler_status().status["workers"] == 1, 30)
        (listed,) = asyncio.run(provider.list_units())
        (worker,) = [psutil.Process(pid) for pid in provider.children]
        wait_until(lambda: len(worker.children()) >= 2, 30)  # cpu=2: two task processes, forked
        assert all(child.cmdline() == worker.cmdline() for child in worker.children())
        assert listed.details["pids"] == str([worker.pid]), "the unit's one worker, not its task processes"
    finally:
        asyncio.run(provider.terminate([unit.unit_id]))
    assert asyncio.run(provider.list_units()) == []
