"""Unchanged Ray programs on workers the ec2 adapter starts (moto server + boot simulator, all on 127.0.0.1).

``scaler_cluster --config`` runs a scheduler and an ec2 adapter whose groups start at zero units, so
the queue alone scales them: the examples' tasks launch CPU instances, and a Ray task asking
``num_gpus=1`` launches only the GPU group's instance (checked in the scheduler's status and in EC2).
Ray itself is never imported: the programs run on the compat layer with ``import ray`` blocked.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from scaler import Client
from scaler.utility.net import free_port
from tests.conftest import wait_until
from tests.ec2_harness import BootSimulator, MotoEc2, moto_session, simulated_instances

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ("monte_carlo_pi", "map_reduce", "hyperparameter_sweep")  # plain ray.init(): any address
NO_RAY = "import sys, runpy; sys.modules['ray'] = None; sys.argv = ['scaler.compat.ray', *sys.argv[1:]]; "
NO_RAY += "runpy.run_module('scaler.compat.ray', run_name='__main__')"
GPU_PROGRAM = """import os

import ray

ray.init()


@ray.remote(num_gpus=1)
def on_a_gpu(x):
    return x + 1, os.environ.get("SCALER_SIMULATED_INSTANCE", "")


answer, instance = ray.get(on_a_gpu.remote(41), timeout=90)
assert answer == 42
print("PASSED gpu on", instance)
ray.shutdown()
"""


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoEc2]:
    with moto_session() as server:
        yield server


@pytest.fixture(scope="module")
def simulator(moto: MotoEc2, tmp_path_factory: pytest.TempPathFactory) -> Iterator[BootSimulator]:
    with simulated_instances(moto, tmp_path_factory.mktemp("instances")) as simulator:
        yield simulator


def deployment(tmp_path: Path, port: int, moto: MotoEc2) -> Path:
    """A cpu group and a gpu group, both from zero units: only the queue launches instances."""
    group = f"""instance_types = ["t3.micro"]
subnets = {list(moto.subnets)!r}
image_id = "{moto.image_id}"
"""
    config = tmp_path / "ec2.toml"
    config.write_text(f"""
cluster_id = "ec2r{port}"
[scheduler]
address = "tcp://127.0.0.1:{port}"
[scaling]
idle_timeout = 60
stabilization_window = 0
interval = 0.2
[[adapter]]
provider = "ec2"
state_dir = "{tmp_path / "state"}"
reconcile_interval = 0.5
[adapter.options]
region = "us-east-1"
endpoint_url = "{moto.url}"
worker_args = ["--death-timeout", "20"]
[adapter.options.groups.cpu]
{group}
[adapter.options.groups.gpu]
{group}
[[adapter.group]]
name = "cpu"
capabilities = "cpu=4"
min_units = 0
max_units = 1
[[adapter.group]]
name = "gpu"
capabilities = "gpu=1,cpu=4"
min_units = 0
max_units = 1
cost = 8.0
""")
    return config


class Ec2Cluster:
    """``scaler_cluster --config`` as a process; its instances, by group, as EC2 and the scheduler see them."""

    def __init__(self, moto: MotoEc2, tmp_path: Path) -> None:
        self.moto = moto
        self.port = free_port()
        self.address = f"tcp://127.0.0.1:{self.port}"
        argv = [sys.executable, "-m", "scaler.cluster.main", "--config", str(deployment(tmp_path, self.port, moto))]
        env = dict(os.environ, SCALER_LOG_LEVEL="WARNING")
        self.process = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, text=True)
        if self.process.stdout is None or "scaler cluster at" not in self.process.stdout.readline():
            raise RuntimeError("scaler_cluster did not start")

    def instances(self) -> dict[str, str]:
        """Instance id -> its ``scaler:group`` tag, terminated ones included (moto keeps them)."""
        filters = [{"Name": "tag:scaler:cluster", "Values": [f"ec2r{self.port}"]}]
        found: dict[str, str] = {}
        for reservation in self.moto.client().describe_instances(Filters=filters)["Reservations"]:
            for instance in reservation["Instances"]:
                tags = {t["Key"]: t["Value"] for t in instance.get("Tags", [])}
                found[instance["InstanceId"]] = tags.get("scaler:group", "")
        return found

    def unit_groups(self) -> list[str]:
        with Client(self.address) as client:
            return sorted(str(unit["group"]) for unit in client.scheduler_status().units)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(60)


@pytest.fixture
def ec2_cluster(moto: MotoEc2, simulator: BootSimulator, tmp_path: Path) -> Iterator[Ec2Cluster]:
    cluster = Ec2Cluster(moto, tmp_path)
    yield cluster
    cluster.stop()


def run_ray(program: Path, address: str) -> subprocess.CompletedProcess[str]:
    """``python -m scaler.compat.ray --address ADDRESS PROGRAM`` with ``import ray`` blocked (the compat API)."""
    env = dict(os.environ, SCALER_LOG_LEVEL="ERROR")
    argv = [sys.executable, "-c", NO_RAY, "--address", address, str(program)]
    return subprocess.run(argv, env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)


def passed(result: subprocess.CompletedProcess[Any]) -> bool:
    return result.returncode == 0


@pytest.mark.timeout(180)
def test_the_ray_examples_run_unchanged_on_instances_the_queue_launched(ec2_cluster: Ec2Cluster) -> None:
    assert ec2_cluster.instances() == {}, "min_units = 0: nothing runs before the first task"
    for name in EXAMPLES:
        result = run_ray(ROOT / "examples" / "ray" / f"{name}.py", ec2_cluster.address)
        assert passed(result), f"{name} failed:\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}"
    # The cpu group launches first (cheaper); at its max_units the queue may spill onto the gpu group,
    # whose workers (gpu=1,cpu=4) can run CPU tasks too: that is the policy's choice, not asserted here.
    assert "cpu" in ec2_cluster.instances().values()


@pytest.mark.timeout(120)
def test_a_task_asking_for_a_gpu_scales_only_the_gpu_group(ec2_cluster: Ec2Cluster, tmp_path: Path) -> None:
    program = tmp_path / "gpu_task.py"
    program.write_text(GPU_PROGRAM)
    result = run_ray(program, ec2_cluster.address)
    assert passed(result) and "PASSED gpu" in result.stdout, f"{result.stdout[-3000:]}\n{result.stderr[-5000:]}"
    assert wait_until(lambda: ec2_cluster.unit_groups() == ["gpu"], timeout=10), "the scheduler saw one gpu unit"
    (instance,) = [i for i, group in ec2_cluster.instances().items() if group == "gpu"]
    assert ec2_cluster.instances() == {instance: "gpu"}, "no cpu instance was launched"
    assert f"PASSED gpu on {instance}" in result.stdout, "the task ran on the gpu instance"
