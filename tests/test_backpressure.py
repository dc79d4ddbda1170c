"""A client past the scheduler's per-client bound waits (or raises after its timeout)."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from scaler import BackpressureError, Client, ClientConfig, LocalCluster


def test_submit_blocks_then_raises_over_the_bound(make_cluster: Callable[..., LocalCluster]) -> None:
    cluster = make_cluster(n_workers=1, scheduler_args=("--max-queued-tasks", "5"))
    with Client(cluster.address, ClientConfig(backpressure_timeout=0.5)) as client:
        futures = [client.submit(time.sleep, 3) for _ in range(5)]
        start = time.monotonic()
        with pytest.raises(BackpressureError, match="5 tasks"):
            client.submit(time.sleep, 0)
        assert time.monotonic() - start >= 0.4
        client.cancel(futures)
    with Client(cluster.address) as client:
        futures = [client.submit(pow, 2, i) for i in range(20)]
        assert client.get(futures, timeout=30) == [2**i for i in range(20)]
