"""Dead peers are noticed at once, and stuck peers never hang (issue 10, part 5).

- A client learns that its scheduler died from the dropped connection, not after its peer timeout.
- A worker or adapter whose handshake fails (wrong or missing secret or keys) says why and exits
  non-zero at once, instead of blocking forever in a send; one that never joined exits non-zero
  after its death timeout.
- A worker the scheduler dropped while it was frozen says hello again and takes new work.
- Work of a client that is gone does not start: a client killed with 1,000 queued tasks.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable

import pytest

from scaler import Client, ClientConfig, ConnectionFailedError, LocalCluster
from tests.conftest import wait_until, wait_workers


def test_client_notices_a_killed_scheduler_from_the_dropped_connection(
    make_cluster: Callable[..., LocalCluster],
) -> None:
    cluster = make_cluster(n_workers=1)
    # A 30 s peer timeout: only the dropped connection can explain a failure within seconds.
    client = Client(cluster.address, ClientConfig(peer_timeout=30.0))
    try:
        wait_workers(client, 1)
        running = client.submit(time.sleep, 60)
        queued = client.submit(pow, 2, 10)
        wait_until(lambda: client.scheduler_status().status.get("tasks_running", 0) == 1)
        assert cluster.scheduler is not None
        start = time.monotonic()
        cluster.scheduler.send_signal(signal.SIGKILL)
        with pytest.raises(ConnectionFailedError, match=r"lost the connection to scheduler"):
            running.result(10)
        assert time.monotonic() - start < 3.0
        with pytest.raises(ConnectionFailedError):
            client.get(queued, timeout=1)
        with pytest.raises(ConnectionFailedError):
            client.submit(pow, 2, 2)
    finally:
        client.close()
