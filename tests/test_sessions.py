"""Sessions: client disconnects, malformed frames, protocol versions, shutdown, death timeouts."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable

import msgspec
import zmq

from scaler import Client, ConnectionFailedError, LocalCluster
from scaler.errors import SchedulerShutdownError
from scaler.protocol import messages as m
from scaler.protocol.wire import encode, split_batch
from scaler.utility.sockets import dial
from tests.conftest import wait_until, wait_workers


def test_killed_client_leaves_nothing_behind(make_cluster: Callable[..., LocalCluster]) -> None:
    # One single-slot worker: while the killed client's long task runs, nothing else can.
    cluster = make_cluster(n_workers=1)
    script = f"""
import time, numpy
from scaler import Client

def spin(seconds):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass

c = Client({cluster.address!r})
refs = [c.put(numpy.ones(100_000)) for _ in range(5)]
long = c.submit(spin, 300)
print("READY", flush=True)
futures = []
while True:  # killed in the middle of this stream of submits and puts
    futures.append(c.submit(time.sleep, 10))
    refs.append(c.put(numpy.ones(1_000)))
    time.sleep(0.002)
"""
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None and process.stdout.readline().strip() == "READY"
        with Client(cluster.address) as observer:

            def status() -> dict[str, int | float | str]:
                return observer.scheduler_status().status

            wait_until(lambda: status().get("tasks_running", 0) == 1 and int(status()["tasks"]) > 50, 30)
            assert int(status()["objects"]) > 50
            process.kill()
            process.wait()
            wait_until(lambda: status()["tasks"] == 0, 20)
            wait_until(lambda: status()["objects"] == 0, 15)
            final = status()
            assert final["clients"] == 1 and final["object_bytes"] == 0
            # The worker's only slot is free again: the 300 s task was stopped, not just forgotten.
            assert observer.submit(pow, 2, 2).result(15) == 4
    finally:
        process.kill()


def test_malformed_frames_are_rejected_and_scheduler_keeps_serving(make_cluster: Callable[..., LocalCluster]) -> None:
    cluster = make_cluster(n_workers=1)
    context = zmq.Context()
    raw = dial(context, "c", cluster.address, None)  # an authenticated peer that then misbehaves
    raw.connect(cluster.address)
    rng = random.Random(7)
    refused = 0
    try:
        cases: list[list[bytes]] = []
        for i in range(1000):
            kind = i % 5
            if kind == 0:
                cases.append([rng.randbytes(rng.randint(0, 200))])
            elif kind == 1:
                cases.append([msgspec.msgpack.encode([["SubmitTask", rng.random(), None]])])
            elif kind == 2:
                cases.append([encode([m.PutObject("x", 10**9)]), b"tiny"])
            elif kind == 3:
                cases.append([encode([m.Hello("client", m.PROTOCOL_VERSION + 1 + i)])])
            else:
                cases.append([encode([m.SubmitTask("t", "f", "cpu=1", [], 0)])])
        for frames in cases:
            raw.send_multipart(frames)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and refused < 400:
            if raw.poll(200):
                for msg, _ in split_batch(raw.recv_multipart()):
                    if isinstance(msg, m.Refused):
                        refused += 1
                        assert "version" in msg.reason or "Hello first" in msg.reason
        assert refused == 400, "every wrong-version hello and every message before hello gets a refusal"
        with Client(cluster.address) as client:
            assert client.submit(pow, 3, 3).result(15) == 27
            status = client.scheduler_status().status
            assert status["tasks"] == 0
            assert status["rejected_messages"] == 1000, "each of the 1,000 malformed messages is rejected once"
    finally:
        raw.close(0)
        context.term()


def test_wrong_protocol_version_gets_a_clear_refusal(shared_cluster: LocalCluster) -> None:
    context = zmq.Context()
    raw = dial(context, "c", shared_cluster.address, None)
    raw.connect(shared_cluster.address)
    try:
        raw.send_multipart([encode([m.Hello("client", 999)])])
        assert raw.poll(5000)
        ((msg, _),) = split_batch(raw.recv_multipart())
        assert isinstance(msg, m.Refused)
        assert "protocol version 999" in msg.reason and str(m.PROTOCOL_VERSION) in msg.reason
    finally:
        raw.close(0)
        context.term()


def test_scheduler_shutdown_tells_clients_and_workers(make_cluster: Callable[..., LocalCluster]) -> None:
    # A 60 s death timeout: workers that exit within seconds did so because they were told.
    cluster = make_cluster(n_workers=2, worker_args=("--death-timeout", "60"))
    client = Client(cluster.address)
    wait_workers(client, 2)
    pending = client.submit(time.sleep, 30)
    wait_until(lambda: client.scheduler_status().status.get("tasks_running", 0) == 1)
    assert cluster.scheduler is not None
    start = time.monotonic()
    cluster.scheduler.send_signal(signal.SIGTERM)
    try:
        pending.result(10)
        raise AssertionError("the pending future must fail")
    except SchedulerShutdownError as exc:
        assert "shut down" in str(exc)
    try:
        for worker in cluster.workers:
            worker.wait(max(0.1, start + 8 - time.monotonic()))
    except subprocess.TimeoutExpired:
        raise AssertionError("workers must exit on the scheduler's Shutdown, not after their death timeout") from None
    assert [w.returncode for w in cluster.workers] == [0, 0]
    client.close()


def test_worker_exits_after_death_timeout_without_scheduler(make_cluster: Callable[..., LocalCluster]) -> None:
    cluster = make_cluster(n_workers=1, worker_args=("--death-timeout", "2"))
    with Client(cluster.address) as client:
        wait_workers(client, 1)
    assert cluster.scheduler is not None
    cluster.scheduler.send_signal(signal.SIGKILL)
    start = time.monotonic()
    cluster.workers[0].wait(20)
    assert time.monotonic() - start < 15


def test_client_without_scheduler_fails_clearly() -> None:
    from scaler import ClientConfig
    from scaler.utility.net import free_port

    start = time.monotonic()
    try:
        Client(f"tcp://127.0.0.1:{free_port()}", ClientConfig(connect_timeout=1.0))
        raise AssertionError("must not connect")
    except ConnectionFailedError as exc:
        assert "no answer from scheduler" in str(exc)
    assert time.monotonic() - start < 10


def test_scheduler_refuses_bad_flags_clearly() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "scaler.scheduler.main", "not-an-address"], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 2 and "tcp://HOST:PORT" in result.stderr
    result = subprocess.run(
        [sys.executable, "-m", "scaler.worker.main", "tcp://127.0.0.1:1", "-c", "cpu=lots"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2 and "cpu=lots" in result.stderr
    assert os.environ.get("SCALER_ADDRESS") is None


def test_shared_memory_of_a_killed_scheduler_is_removed_by_its_cluster(
    make_cluster: Callable[..., LocalCluster],
) -> None:
    import glob

    import numpy as np

    cluster = make_cluster(n_workers=1)
    assert cluster.scheduler is not None
    pid = cluster.scheduler.pid
    with Client(cluster.address) as client:
        ref = client.put(np.ones(2_000_000))
        assert client.submit(len, ref).result(30) == 2_000_000
        assert glob.glob(f"/dev/shm/scaler-{pid}-*"), "a large object lives in shared memory"
        cluster.scheduler.send_signal(signal.SIGKILL)
        cluster.scheduler.wait(10)
    cluster.shutdown()
    assert not glob.glob(f"/dev/shm/scaler-{pid}-*")
