"""``LocalCluster()`` defaults: one worker per CPU, loopback, ``cpu=1`` each."""

from __future__ import annotations

import os
import time

import pytest

from scaler import Client, LocalCluster
from tests.conftest import wait_workers


@pytest.mark.parametrize("cpus", [None, 3])
def test_local_cluster_defaults_to_one_worker_per_cpu(monkeypatch: pytest.MonkeyPatch, cpus: int | None) -> None:
    # This machine has 2 CPUs, which would also be a plausible hard-coded default: pretending it has
    # 3 shows the count comes from os.cpu_count().
    if cpus is not None:
        monkeypatch.setattr(os, "cpu_count", lambda: cpus)
    expected = os.cpu_count() or 1
    with LocalCluster() as cluster, Client(cluster.address) as client:
        assert cluster.n_workers == expected and len(cluster.workers) == expected
        assert cluster.address.startswith("tcp://127.0.0.1:") and cluster.capabilities == "cpu=1"
        wait_workers(client, expected)
        time.sleep(0.5)
        reply = client.scheduler_status()
        assert reply.status["workers"] == expected
        assert {w["capabilities"] for w in reply.workers} == {"cpu=1"}
