"""Worker adapters end to end: a real scheduler, a real adapter process, real worker processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
from scaler.adapters.identity import Identity, tag_arguments, tags_from_arguments

from scaler import Client
from scaler.utility.net import free_port
from tests.conftest import wait_until


@dataclass
class Deployment:
    address: str
    config: Path
    identity: Identity
    processes: list[subprocess.Popen[bytes]]

    def start_adapter(self, provider: str = "local") -> subprocess.Popen[bytes]:
        env = dict(os.environ, SCALER_LOG_LEVEL="WARNING")
        argv = [sys.executable, "-m", f"scaler.adapters.{provider}.main", "--config", str(self.config)]
        process = subprocess.Popen(argv, env=env)
        self.processes.append(process)
        return process

    def unit_processes(self) -> list[psutil.Process]:
        found = []
        for process in psutil.process_iter(["cmdline", "status"]):
            cmdline = process.info["cmdline"] or []
            if process.info["status"] != psutil.STATUS_ZOMBIE and self.identity.owns(tags_from_arguments(cmdline)):
                found.append(process)
        return found

    def worker_argv(self, group: str, name: str) -> list[str]:
        """A worker of this deployment's ``group`` that no adapter started (as one left after a crash)."""
        unit_id = f"{self.identity.cluster_id}.{self.identity.adapter}.{group}.{name}"
        tags = tag_arguments(self.identity.tags(group, unit_id, "survivor"))
        return [sys.executable, "-m", "scaler.worker.main", self.address, "--unit-id", unit_id, *tags]


GROUPS = """
[[adapter.group]]
name = "cpu"
capabilities = "cpu=1"
max_units = {cpu_max}
min_units = {cpu_min}
[[adapter.group]]
name = "gpu"
capabilities = "cpu=1,gpu=1"
max_units = 1
priority = 1
"""


@pytest.fixture
def deploy(tmp_path: Path) -> Iterator[Callable[..., Deployment]]:
    made: list[Deployment] = []

    def make(
        provider: str = "local",
        options: str = "",
        cpu_max: int = 4,
        cpu_min: int = 0,
        groups: str = "",
        idle: float = 1.5,
        drain_timeout: float = 300.0,
    ) -> Deployment:
        port = free_port()
        text = f"""
cluster_id = "c{port}"
[scheduler]
address = "tcp://127.0.0.1:{port}"
[scaling]
idle_timeout = {idle}
stabilization_window = 1
interval = 0.2
drain_timeout = {drain_timeout}
[[adapter]]
provider = "{provider}"
name = "t{port}"
reconcile_interval = 0.3
boot_timeout = 20
state_dir = "{tmp_path / "state"}"
{options}
""" + (groups or GROUPS.format(cpu_max=cpu_max, cpu_min=cpu_min))
        config = tmp_path / f"deploy-{port}.toml"
        config.write_text(text)
        env = dict(os.environ, SCALER_LOG_LEVEL="WARNING")
        scheduler = subprocess.Popen([sys.executable, "-m", "scaler.scheduler.main", "--config", str(config)], env=env)
        deployment = Deployment(f"tcp://127.0.0.1:{port}", config, Identity(f"c{port}", f"t{port}"), [scheduler])
        made.append(deployment)
        return deployment

    yield make
    for deployment in made:
        for process in reversed(deployment.processes):
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
        for process in deployment.unit_processes():
            process.kill()


def sleepy(seconds: float, tag: int) -> int:
    time.sleep(seconds)
    return tag


def units_of(client: Client, group: str) -> int:
    rows = [r for r in client.scheduler_status().adapters if r["group"] == group]
    return sum(int(r.get(s, 0)) for r in rows for s in ("requested", "booting", "running"))


def test_scale_from_zero_and_back_to_min_with_every_task_once(deploy: Callable[..., Deployment]) -> None:
    deployment = deploy(cpu_max=4, cpu_min=1)
    deployment.start_adapter()
    with Client(deployment.address) as client:
        wait_until(lambda: client.scheduler_status().status["workers"] >= 1, 30)
        first = [client.submit(sleepy, 0.4, i) for i in range(16)]
        wait_until(lambda: client.scheduler_status().status["workers"] >= 3, 30)
        assert sorted(f.result(60) for f in first) == list(range(16))
        second = [client.submit(sleepy, 1.5 if i % 4 == 0 else 0.1, 100 + i) for i in range(12)]
        assert sorted(f.result(60) for f in second) == list(range(100, 112))
        status = client.scheduler_status().status
        assert status["total_done"] == 28 and status["total_retried"] == 0, "no busy worker was terminated"
        wait_until(lambda: client.scheduler_status().status["workers"] == 1, 30)
        assert units_of(client, "cpu") == 1, "back to min_units after the idle timeout"
        assert any("terminate" in d for d in client.scheduler_status().decisions)


def test_gpu_tasks_scale_only_the_gpu_group(deploy: Callable[..., Deployment]) -> None:
    deployment = deploy()
    deployment.start_adapter()
    with Client(deployment.address) as client:
        futures = [client.options(capabilities="cpu=1,gpu=1").submit(sleepy, 0.1, i) for i in range(3)]
        assert [f.result(60) for f in futures] == [0, 1, 2]
        decisions = client.scheduler_status().decisions
        assert decisions and all("/gpu:" in d for d in decisions if "launch" in d), decisions
        assert units_of(client, "cpu") == 0


def test_a_failing_group_falls_back_to_the_next(deploy: Callable[..., Deployment]) -> None:
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
cost = 3.0
"""
    options = 'backoff_base = 60\noptions = { fail = { cheap = ["capacity", 1000] } }'
    deployment = deploy("fake", options, groups=groups)
    deployment.start_adapter("fake")
    with Client(deployment.address) as client:
        futures = [client.submit(sleepy, 0.2, i) for i in range(6)]
        assert sorted(f.result(60) for f in futures) == list(range(6))
        rows = {r["group"]: r for r in client.scheduler_status().adapters}
        assert "CapacityError" in str(rows["cheap"]["failing"])
        assert any("/backup: launch" in d for d in client.scheduler_status().decisions)


def test_sigkilled_adapter_leaves_no_orphans_and_a_restart_reaps(deploy: Callable[..., Deployment]) -> None:
    deployment = deploy(cpu_max=3, cpu_min=2)
    adapter = deployment.start_adapter()
    with Client(deployment.address) as client:
        wait_until(lambda: client.scheduler_status().status["workers"] >= 2, 30)
    adapter.send_signal(signal.SIGKILL)
    adapter.wait(10)
    wait_until(lambda: not deployment.unit_processes(), 20)
    env = {k: v for k, v in os.environ.items() if k != "SCALER_PARENT_PID"}
    argv = deployment.worker_argv("cpu", "survivor")
    survivor_id = argv[argv.index("--unit-id") + 1]
    survivor = subprocess.Popen(argv, env=env, start_new_session=True)
    deployment.processes.append(survivor)
    wait_until(lambda: deployment.unit_processes(), 20)
    deployment.start_adapter()
    survivor.wait(30)
    with Client(deployment.address) as client:
        wait_until(lambda: client.scheduler_status().status["workers"] == 2, 30)
    assert all(survivor_id not in " ".join(p.cmdline()) for p in deployment.unit_processes())


def start_survivors(deployment: Deployment, count: int) -> list[subprocess.Popen[bytes]]:
    """Workers of this deployment's ``cpu`` group that no adapter started (as after a crash)."""
    env = {k: v for k, v in os.environ.items() if k != "SCALER_PARENT_PID"}
    env["SCALER_LOG_LEVEL"] = "WARNING"
    survivors = []
    for i in range(count):
        survivors.append(subprocess.Popen(deployment.worker_argv("cpu", f"s{i}"), env=env, start_new_session=True))
    deployment.processes.extend(survivors)
    return survivors


@pytest.mark.parametrize("drain_timeout", [300.0, 1.0])
def test_surplus_units_are_drained_before_they_are_terminated(
    deploy: Callable[..., Deployment], drain_timeout: float
) -> None:
    deployment = deploy(cpu_max=1, idle=60, options='orphans = "adopt"', drain_timeout=drain_timeout)
    survivors = start_survivors(deployment, 2)
    with Client(deployment.address) as client:
        wait_until(lambda: client.scheduler_status().status["workers"] == 2, 30)
        futures = [client.submit(sleepy, 6, i) for i in range(2)]
        wait_until(lambda: client.scheduler_status().status.get("tasks_running", 0) == 2, 30)
        started = time.monotonic()
        deployment.start_adapter()
        wait_until(lambda: any(p.poll() is not None for p in survivors), 60)
        ended = time.monotonic() - started
        assert sorted(f.result(60) for f in futures) == [0, 1], "every task completes"
        status = client.scheduler_status()
        assert any("above max_units=1" in d for d in status.decisions), status.decisions
        if drain_timeout > 100:
            assert ended > 4.0, "the busy unit was left to finish its task"
            assert status.status["total_retried"] == 0 and status.status["total_done"] == 2
        else:
            assert ended < 5.0, "the drain timeout ends the wait"
            assert status.status["total_retried"] == 1, "the interrupted task ran again elsewhere"
        assert sum(p.poll() is None for p in survivors) == 1, "max_units=1: one unit stays"


def test_bad_config_is_refused_with_file_key_and_reason(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[[adapter]]\nprovider = "local"\n[[adapter.group]]\nname = "cpu"\nmax_units = "many"\n')
    result = subprocess.run(
        [sys.executable, "-m", "scaler.adapters.local.main", "--config", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert str(bad) in result.stderr and "$.adapter[0].group[0].max_units" in result.stderr
    bad.write_text('[[adapter]]\nprovider = "nowhere"\n[[adapter.group]]\nname = "cpu"\n')
    result = subprocess.run(
        [sys.executable, "-m", "scaler.scheduler.main", "--config", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2 and "unknown provider 'nowhere'" in result.stderr and "local" in result.stderr


RAY_GPU_PROGRAM = """
import os, sys
from scaler.compat import ray

ray.init(address=sys.argv[1])


@ray.remote(num_gpus=1)
def on_gpu(i):
    return i, os.environ.get("SCALER_UNIT_ID", "")


print(sorted(ray.get([on_gpu.remote(i) for i in range(3)], timeout=90)))
"""


def test_a_ray_program_asking_num_gpus_scales_the_gpu_group(deploy: Callable[..., Deployment]) -> None:
    deployment = deploy()
    deployment.start_adapter()
    env = dict(os.environ, SCALER_LOG_LEVEL="WARNING")
    argv = [sys.executable, "-c", RAY_GPU_PROGRAM, deployment.address]
    run = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.startswith("[(0, "), run.stdout
    with Client(deployment.address) as client:
        decisions = client.scheduler_status().decisions
        assert any("launch" in d and "/gpu:" in d for d in decisions), decisions
        assert all("/gpu:" in d for d in decisions if "launch" in d), decisions
        assert units_of(client, "cpu") == 0


def test_a_budget_caps_the_units_however_long_the_queue(deploy: Callable[..., Deployment]) -> None:
    groups = """
[[adapter.group]]
name = "cpu"
capabilities = "cpu=1"
max_units = 10
cost = 1.0
"""
    deployment = deploy(provider="fake", options="max_cost_per_hour = 2", groups=groups)
    deployment.start_adapter("fake")
    with Client(deployment.address) as client:
        futures = [client.submit(sleepy, 0.5, i) for i in range(16)]
        peak = 0
        while not all(f.done() for f in futures):
            peak = max(peak, units_of(client, "cpu"))
            time.sleep(0.1)
        assert sorted(f.result(1) for f in futures) == list(range(16))
        assert peak == 2, "two units of $1/h under a $2/h budget, not ten"
        reply = client.scheduler_status()
        holds = [d for d in reply.decisions if "hold" in d]
        assert holds and "budget:" in holds[0] and "of $2.00/h" in holds[0], reply.decisions
        (row,) = reply.adapters
        assert row["max_cost_per_hour"] == 2.0 and float(row["cost_per_hour"]) <= 2.0


RAY_SPREAD_PROGRAM = """
import sys
from scaler.compat import ray
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

ray.init(address=sys.argv[1])
group = ray.util.placement_group([{"CPU": 1, "GPU": 1}] * 4, strategy="STRICT_SPREAD")
assert group.wait(90), ray.util.placement_group_table(group)


@ray.remote(num_gpus=1)
def unit():
    return ray.get_runtime_context().get_node_id()


strategies = [PlacementGroupSchedulingStrategy(group, i) for i in range(4)]
print(sorted(set(ray.get([unit.options(scheduling_strategy=s).remote() for s in strategies], timeout=60))))
"""


def test_a_pending_placement_group_launches_the_units_its_bundles_need(deploy: Callable[..., Deployment]) -> None:
    groups = """
[[adapter.group]]
name = "cpu"
capabilities = "cpu=1"
max_units = 4
[[adapter.group]]
name = "gpu"
capabilities = "cpu=2,gpu=2"
max_units = 6
"""
    deployment = deploy(groups=groups)
    deployment.start_adapter()
    env = dict(os.environ, SCALER_LOG_LEVEL="WARNING")
    argv = [sys.executable, "-c", RAY_SPREAD_PROGRAM, deployment.address]
    run = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=150)
    assert run.returncode == 0, run.stderr[-3000:]
    units = eval(run.stdout.strip().splitlines()[-1])
    assert len(units) == 4 and all(units), units
    with Client(deployment.address) as client:
        decisions = client.scheduler_status().decisions
        launched = [d for d in decisions if "launch" in d]
        assert launched and all("/gpu:" in d and "placement group bundles" in d for d in launched), decisions
        assert units_of(client, "gpu") == 4, "one unit per STRICT_SPREAD bundle, though a unit holds two GPUs"
        assert units_of(client, "cpu") == 0
