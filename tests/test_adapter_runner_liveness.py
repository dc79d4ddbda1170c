"""The adapter runner's liveness end to end: a real scheduler, a real adapter process, real workers.

A slow provider call once lost the whole adapter (the call was awaited inside the message handler:
no report for its duration, the scheduler dropped the adapter as silent and refused its next report,
and the runner then terminated its units and exited). A restarted scheduler was the same: the
runner exited instead of saying Hello again.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest
from scaler.adapters.identity import TAG_ADAPTER, TAG_UNIT, tags_from_arguments
from scaler.adapters.testing import stop

from scaler import Client
from scaler.utility.net import free_port
from tests.conftest import wait_until


@dataclass
class Deployment:
    address: str
    config: Path
    adapter: str
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start_scheduler(self) -> subprocess.Popen[bytes]:
        env = dict(os.environ, SCALER_LOG_LEVEL="WARNING")
        argv = [sys.executable, "-m", "scaler.scheduler.main", "--config", str(self.config)]
        process = subprocess.Popen(argv, env=env)
        self.processes.append(process)
        return process

    def start_adapter(self) -> subprocess.Popen[bytes]:
        env = dict(os.environ, SCALER_LOG_LEVEL="WARNING")
        argv = [sys.executable, "-m", "scaler.adapters.fake.main", "--config", str(self.config)]
        process = subprocess.Popen(argv, env=env, stderr=subprocess.PIPE)
        self.processes.append(process)
        return process

    def unit_processes(self) -> list[psutil.Process]:
        found = []
        for process in psutil.process_iter(["cmdline", "status"]):
            tags = tags_from_arguments(process.info["cmdline"] or [])
            if process.info["status"] != psutil.STATUS_ZOMBIE and tags.get(TAG_ADAPTER) == self.adapter:
                found.append(process)
        return found

    def unit_ids(self) -> set[str]:
        return {tags_from_arguments(p.cmdline()).get(TAG_UNIT, "") for p in self.unit_processes()}


@pytest.fixture
def deployments(tmp_path: Path) -> Iterator[list[Deployment]]:
    made: list[Deployment] = []
    yield made
    for deployment in made:
        for process in reversed(deployment.processes):
            stop(process)
        for process in deployment.unit_processes():
            process.kill()


def deploy(made: list[Deployment], tmp_path: Path, adapter: str, groups: str, scheduler: str = "") -> Deployment:
    port = free_port()
    config = tmp_path / f"deploy-{port}.toml"
    config.write_text(
        f"""
[scheduler]
address = "tcp://127.0.0.1:{port}"
{scheduler}
[scaling]
idle_timeout = 60
interval = 0.2
[[adapter]]
provider = "fake"
name = "t{port}"
reconcile_interval = 0.3
state_dir = "{tmp_path / "state"}"
{adapter}
{groups}
"""
    )
    deployment = Deployment(f"tcp://127.0.0.1:{port}", config, f"t{port}")
    made.append(deployment)
    return deployment


CPU = '[[adapter.group]]\nname = "cpu"\ncapabilities = "cpu=1"\nmin_units = {min}\nmax_units = 2\n'


def rows(client: Client) -> dict[str, dict[str, int | float | str]]:
    return {str(r["group"]): r for r in client.scheduler_status().adapters}


def test_a_launch_slower_than_the_peer_timeout_keeps_the_adapter_and_its_units(
    deployments: list[Deployment], tmp_path: Path
) -> None:
    deployment = deploy(
        deployments,
        tmp_path,
        "options = { launch_seconds = 4 }",
        CPU.format(min=0),
        "peer_timeout = 2\nheartbeat_interval = 0.5",
    )
    deployment.start_scheduler()
    adapter = deployment.start_adapter()
    with Client(deployment.address) as client:
        futures = [client.submit(time.sleep, 0.5) for _ in range(4)]
        for future in futures:
            future.result(90)
        assert adapter.poll() is None, "the adapter is still running"
        row = rows(client)["cpu"]
        assert int(row.get("running", 0)) + int(row.get("booting", 0)) >= 1, row
        units = {str(u["unit"]) for u in client.scheduler_status().units}
        assert units and units <= deployment.unit_ids(), "the units it launched are kept"
        assert sum(1 for d in client.scheduler_status().decisions if "launch" in d) <= 2, "no launch storm"


def test_the_adapter_rejoins_a_restarted_scheduler_and_ends_its_units_after_death_timeout(
    deployments: list[Deployment], tmp_path: Path
) -> None:
    deployment = deploy(deployments, tmp_path, "death_timeout = 6", CPU.format(min=1), "peer_timeout = 3")
    scheduler = deployment.start_scheduler()
    adapter = deployment.start_adapter()
    with Client(deployment.address) as client:
        wait_until(lambda: client.scheduler_status().status["workers"] >= 1, 60)
        (before,) = [str(u["unit"]) for u in client.scheduler_status().units]
    scheduler.send_signal(signal.SIGKILL)
    scheduler.wait(10)
    time.sleep(1.0)
    scheduler = deployment.start_scheduler()
    with Client(deployment.address) as client:
        wait_until(lambda: [str(u["unit"]) for u in client.scheduler_status().units] == [before], 30)
        assert client.submit(sum, [1, 2, 3]).result(60) == 6
        assert adapter.poll() is None
    assert before in deployment.unit_ids(), "the unit was kept"
    scheduler.send_signal(signal.SIGKILL)
    scheduler.wait(10)
    gone = time.monotonic()
    _, stderr = adapter.communicate(timeout=60)
    took = time.monotonic() - gone
    assert adapter.returncode == 0
    text = stderr.decode()
    assert "no scheduler at" in text and "terminating its 1 unit(s)" in text, text
    assert took > 6 * 0.9, "it waited death_timeout before ending its units"
    wait_until(lambda: not deployment.unit_processes(), 20)


def test_an_auth_error_stops_its_group_and_the_next_group_serves(deployments: list[Deployment], tmp_path: Path) -> None:
    groups = """
[[adapter.group]]
name = "cheap"
capabilities = "cpu=1"
max_units = 2
[[adapter.group]]
name = "backup"
capabilities = "cpu=1"
max_units = 2
priority = 1
"""
    options = 'backoff_base = 0.1\nbackoff_max = 0.2\noptions = { fail = { cheap = ["auth", 1000] } }'
    deployment = deploy(deployments, tmp_path, options, groups)
    deployment.start_scheduler()
    adapter = deployment.start_adapter()
    with Client(deployment.address) as client:
        futures = [client.submit(time.sleep, 0.2) for _ in range(4)]
        for future in futures:
            future.result(60)
        failing = str(rows(client)["cheap"]["failing"])
        assert "stopped" in failing and "AuthError" in failing, failing
        time.sleep(2.0)  # a retryable error would have been retried ~10 times by now
        more = [client.submit(time.sleep, 0.2) for _ in range(4)]
        for future in more:
            future.result(60)
    adapter.terminate()
    _, stderr = adapter.communicate(timeout=60)
    assert stderr.decode().count("injected auth failure") == 1, stderr.decode()
