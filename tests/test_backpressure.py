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


def hold(data: bytes, seconds: float) -> int:
    time.sleep(seconds)
    return len(data)


def test_queued_bytes_bound_blocks_until_room_then_raises(make_cluster: Callable[..., LocalCluster]) -> None:
    cluster = make_cluster(n_workers=2, scheduler_args=("--max-queued-bytes", "1000000"))
    big = b"x" * 600_000
    with Client(cluster.address, ClientConfig(backpressure_timeout=0.5)) as client:
        first = client.submit(hold, big, 60)
        assert client.submit(hold, b"small", 0).result(30) == 5, "small arguments still fit under the bound"
        start = time.monotonic()
        with pytest.raises(BackpressureError, match="bytes"):
            client.submit(hold, big, 0)
        assert time.monotonic() - start >= 0.4
        client.cancel(first)
        assert client.submit(hold, big, 0).result(30) == 600_000, "a cancelled task's bytes no longer count"
    with Client(cluster.address) as client:  # no timeout: submit waits until a task's bytes are done
        first = client.submit(hold, big, 2)
        start = time.monotonic()
        second = client.submit(hold, big, 0)
        waited = time.monotonic() - start
        assert first.done(), "the second submit returned only once the first task's bytes were freed"
        assert waited >= 1.0, f"submit over the bytes bound returned after {waited:.2f}s"
        assert second.result(30) == 600_000
