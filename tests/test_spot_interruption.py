"""Spot interruption notices end to end: real scheduler, workers and adapter, a local metadata service.

A worker watching the (stand-in) instance metadata service sees the notice EC2 posts two minutes
before it reclaims a spot instance: it takes no new task, hands back those it holds unstarted, tells
the scheduler (which drains it, shows it, and replaces its unit at once) and leaves just before the
deadline, its unfinished tasks then retried elsewhere.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from scaler.adapters.local.render import start_worker

from scaler import Client, LocalCluster
from scaler.protocol import messages as m
from scaler.scheduler.intake import Intake, Rejected
from scaler.scheduler.objects import ObjectStore
from scaler.utility.net import free_port
from scaler.worker.interruption import InterruptionWatcher, parse_notice
from tests.conftest import FAST, wait_until
from tests.metadata_server import MetadataService
from tests.test_adapters import units_of


@pytest.fixture
def metadata() -> Iterator[MetadataService]:
    service = MetadataService()
    yield service
    service.stop()


def where(seconds: float) -> tuple[int, float]:
    """Run for ``seconds``; the pid of the worker agent that ran it, and when it started."""
    started = time.time()
    time.sleep(seconds)
    return os.getppid(), started


def stays_on(pid: int) -> int:
    """Runs on and on on worker ``pid`` (it must be cut short there), at once elsewhere; where it ended."""
    while os.getppid() == pid:
        time.sleep(0.1)
    return os.getppid()


def worker_row(client: Client, pid: int) -> dict[str, int | float | str]:
    rows = [w for w in client.scheduler_status().workers if w["pid"] == pid]
    return rows[0] if rows else {}


def test_a_noticed_worker_takes_nothing_new_hands_back_its_queue_and_leaves_before_the_deadline(
    make_cluster: Callable[..., LocalCluster], metadata: MetadataService
) -> None:
    watching = ("--instance-metadata", metadata.url, "--metadata-interval", "0.2", "--leave-before", "1")
    cluster = make_cluster(n_workers=0, worker_args=(*FAST.worker_args, *watching))
    spot = cluster.add_worker("cpu=2")
    with Client(cluster.address) as client:
        wait_until(lambda: client.scheduler_status().status["workers"] == 1 and metadata.tokens, 30)
        warm = [client.submit(where, 0.3) for _ in range(4)]  # now known short: later ones are prefetched
        assert {f.result(30)[0] for f in warm} == {spot.pid}
        long = client.submit(stays_on, spot.pid)
        queued = [client.submit(where, 0.5) for _ in range(12)]
        wait_until(lambda: worker_row(client, spot.pid).get("unstarted", 0) >= 1, 20)

        metadata.interrupt(seconds=7.0)
        noticed = time.time()
        row = wait_until(lambda: (r := worker_row(client, spot.pid)) and r["interrupted"] and r, 10)
        assert row["draining"] == 1
        wait_until(lambda: worker_row(client, spot.pid).get("unstarted", 1) == 0, 5)  # handed back, unasked

        on_demand = start_worker(dataclasses.replace(cluster.worker_launch("cpu=2"), worker_args=FAST.worker_args))
        cluster.workers.append(on_demand)
        later = [client.submit(where, 0.2) for _ in range(6)]
        results = [f.result(60) for f in [*queued, *later]]
        late_on_spot = [started - noticed for pid, started in results if pid == spot.pid and started > noticed + 1.5]
        assert not late_on_spot, f"the noticed worker started tasks {late_on_spot} s after the notice"
        assert all(pid == on_demand.pid for pid, _ in (f.result() for f in later))

        assert long.result(60) == on_demand.pid, "the task still running at the deadline is retried elsewhere"
        assert spot.wait(10) == 0, "the worker leaves before the deadline (and its host)"
        assert time.time() - noticed < 20
        assert client.scheduler_status().status["total_retried"] >= 1


def test_a_notice_on_a_units_worker_launches_its_replacement_before_it_is_gone(
    tmp_path: Path, metadata: MetadataService
) -> None:
    port = free_port()
    config = tmp_path / "deploy.toml"
    config.write_text(
        f"""
cluster_id = "c{port}"
[scheduler]
address = "tcp://127.0.0.1:{port}"
[scaling]
idle_timeout = 60
stabilization_window = 1
interval = 0.2
[[adapter]]
provider = "fake"
name = "spot{port}"
reconcile_interval = 0.3
boot_timeout = 20
state_dir = "{tmp_path / "state"}"
[[adapter.group]]
name = "spot"
capabilities = "cpu=1"
min_units = 1
max_units = 3
"""
    )
    env = dict(os.environ, SCALER_LOG_LEVEL="WARNING")
    processes = [subprocess.Popen([sys.executable, "-m", "scaler.scheduler.main", "--config", str(config)], env=env)]
    adapter_env = dict(env, SCALER_INSTANCE_METADATA=metadata.url)  # its units' workers inherit it
    argv = [sys.executable, "-m", "scaler.adapters.fake.main", "--config", str(config)]
    processes.append(subprocess.Popen(argv, env=adapter_env))
    address = f"tcp://127.0.0.1:{port}"
    try:
        with Client(address) as client:
            first = wait_until(lambda: client.scheduler_status().workers, 40)[0]
            wait_until(lambda: metadata.tokens, 20)  # its watcher has a token: it is "interrupted" below
            busy = client.submit(where, 15.0)  # the watcher looks every 5 s (the default)
            wait_until(lambda: worker_row(client, int(first["pid"])).get("assigned", 0) == 1, 10)

            metadata.interrupt(seconds=60.0)
            wait_until(lambda: units_of(client, "spot") == 1 and len(client.scheduler_status().workers) == 2, 30)
            reply = client.scheduler_status()
            row = worker_row(client, int(first["pid"]))
            assert row and row["interrupted"] == 1 and row["draining"] == 1, "the first unit is still there"
            assert any(r["unit"] == first["unit"] and r["state"] == "draining" for r in reply.units)
            text = "\n".join(reply.decisions)
            assert "spot interruption notice on worker" in text, text
            assert "spot interruption notice no longer count" in text, text
            assert busy.result(40)[0] == int(first["pid"]), "its running task finished there"
            wait_until(lambda: not worker_row(client, int(first["pid"])), 30)  # then its unit is terminated
            assert units_of(client, "spot") == 1
    finally:
        for process in reversed(processes):
            process.terminate()
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()


def test_the_watcher_speaks_imdsv2_and_reads_the_seconds_left(metadata: MetadataService) -> None:
    watcher = InterruptionWatcher(metadata.url, interval=0.1)
    assert watcher.poll() is None and metadata.tokens, "404 with a token: no notice yet"
    metadata.interrupt(seconds=90.0)
    notice = watcher.poll()
    assert notice is not None and notice.action == "terminate" and 80.0 <= notice.seconds_left <= 91.0
    assert parse_notice(b"not json").seconds_left == 120.0, "an unreadable notice still means the usual two minutes"


def test_an_unreachable_metadata_service_is_said_once_and_the_watch_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    watcher = InterruptionWatcher(f"http://127.0.0.1:{free_port()}", interval=0.05)  # nothing listens there
    with caplog.at_level(logging.DEBUG, logger="scaler.worker.interruption"):
        watcher.start()
        time.sleep(0.6)
        watcher.stop()
    said = [r for r in caplog.records if "cannot read the instance metadata" in r.getMessage()]
    assert len(said) == 1 and watcher.notice is None


@pytest.mark.parametrize("seconds", [-1.0, math.inf, math.nan, 1e9])
def test_a_notice_with_an_impossible_deadline_is_rejected_at_intake(seconds: float) -> None:
    intake = Intake(ObjectStore(), {})
    intake.check("", m.WorkerInterrupted(120.0), [])
    with pytest.raises(Rejected, match="seconds_left"):
        intake.check("", m.WorkerInterrupted(seconds), [])


def test_a_notice_seen_while_the_scheduler_restarts_still_replaces_the_unit(
    tmp_path: Path, metadata: MetadataService
) -> None:
    port = free_port()
    config = tmp_path / "deploy.toml"
    config.write_text(
        f"""
cluster_id = "c{port}"
[scheduler]
address = "tcp://127.0.0.1:{port}"
[scaling]
idle_timeout = 60
interval = 0.2
[[adapter]]
provider = "fake"
name = "spot{port}"
reconcile_interval = 0.3
state_dir = "{tmp_path / "state"}"
[[adapter.group]]
name = "spot"
capabilities = "cpu=1"
min_units = 1
max_units = 1
"""
    )
    env = dict(os.environ, SCALER_LOG_LEVEL="WARNING")
    scheduler_argv = [sys.executable, "-m", "scaler.scheduler.main", "--config", str(config)]
    processes = [subprocess.Popen(scheduler_argv, env=env)]
    argv = [sys.executable, "-m", "scaler.adapters.fake.main", "--config", str(config)]
    processes.append(subprocess.Popen(argv, env=dict(env, SCALER_INSTANCE_METADATA=metadata.url)))
    address = f"tcp://127.0.0.1:{port}"
    try:
        with Client(address) as client:
            first = wait_until(lambda: client.scheduler_status().workers, 40)[0]
            wait_until(lambda: metadata.tokens, 20)
        processes[0].kill()
        processes[0].wait(10)
        metadata.interrupt(seconds=60.0)
        time.sleep(6.0)  # the worker looks every 5 s: it sees the notice while no scheduler listens
        processes.append(subprocess.Popen(scheduler_argv, env=env))
        with Client(address) as client:
            # Idle, the noticed unit is terminated at once; its replacement (another unit) joins.
            wait_until(lambda: any(w["unit"] != first["unit"] for w in client.scheduler_status().workers), 40)
            reply = client.scheduler_status()
            text = "\n".join(reply.decisions)
            assert "spot interruption notice on worker" in text and "no longer count" in text, text
            assert all(
                r["state"] in ("draining", "terminating", "terminated")
                for r in reply.units
                if r["unit"] == first["unit"]
            )
    finally:
        for process in reversed(processes):
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(15)
                except subprocess.TimeoutExpired:
                    process.kill()
