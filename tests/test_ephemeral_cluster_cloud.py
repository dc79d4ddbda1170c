"""``with Cluster(...)`` on EC2 (a moto server and the boot simulator) and Symphony (the REST emulator).

The same block as on local processes and SSH hosts: entered once the shape's minimum of workers
joined, a task runs, and after the block the provider's own records (EC2's instances by the cluster
tag, the emulator's open sessions) show none of the cluster's units. The deployment files are the
ones the providers' Ray tests use; the shape (``SimpleCluster``) takes the place of their groups.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from scaler import Client, Cluster, NodeConfig, SimpleCluster
from scaler.utility.net import free_port
from tests.ec2_harness import BootSimulator, MotoEc2, moto_session, simulated_instances
from tests.symphony_emulator import Emulator
from tests.test_ec2_ray import deployment as ec2_deployment
from tests.test_symphony_ray import USERS
from tests.test_symphony_ray import deployment as symphony_deployment

SHAPE = SimpleCluster(n_nodes=2, node_config=NodeConfig(cpu=1, memory_gb=0.5), max_nodes=2)


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoEc2]:
    with moto_session() as server:
        yield server


@pytest.fixture(scope="module")
def simulator(moto: MotoEc2, tmp_path_factory: pytest.TempPathFactory) -> Iterator[BootSimulator]:
    with simulated_instances(moto, tmp_path_factory.mktemp("instances")) as simulator:
        yield simulator


def live_instances(moto: MotoEc2, cluster_id: str) -> list[str]:
    """EC2's own record: this cluster's instances not terminated (nor on their way)."""
    filters = [{"Name": "tag:scaler:cluster", "Values": [cluster_id]}]
    reservations = moto.client().describe_instances(Filters=filters)["Reservations"]
    states = [i["State"]["Name"] for r in reservations for i in r["Instances"]]
    return [s for s in states if s not in ("terminated", "shutting-down")]


@pytest.mark.timeout(180)
def test_a_cluster_on_ec2_leaves_no_instance_running(moto: MotoEc2, simulator: BootSimulator, tmp_path: Path) -> None:
    config = ec2_deployment(tmp_path, free_port(), moto)
    with Cluster(SHAPE, config=config, provider="ec2", activation_timeout_seconds=120) as cluster:
        assert len(live_instances(moto, cluster.cluster_id)) == 2
        with Client(cluster.address) as client:
            assert client.submit(pow, 2, 4).result(60) == 16
    assert live_instances(moto, cluster.cluster_id) == []
    failing = Cluster(SHAPE, config=config, provider="ec2", activation_timeout_seconds=120)
    with pytest.raises(KeyError), failing:
        raise KeyError("a failure inside the block")
    assert live_instances(moto, failing.cluster_id) == []


@pytest.mark.timeout(240)
def test_scaler_run_on_ec2_passes_the_exit_code_and_leaves_no_instance(
    moto: MotoEc2, simulator: BootSimulator, tmp_path: Path
) -> None:
    config = ec2_deployment(tmp_path, free_port(), moto)
    program = tmp_path / "program.py"
    program.write_text(
        "import sys\nfrom scaler import Client\n"
        "with Client() as c:\n    assert c.submit(pow, 2, 5).result(60) == 32\n"
        "    print('cluster', c.scheduler_status().units[0]['unit'].split('.')[0])\nsys.exit(3)\n"
    )
    argv = [sys.executable, "-m", "scaler.cluster.command", "run", "--quiet", "--config", str(config), str(program)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=200)
    assert done.returncode == 3, done.stderr[-3000:]
    cluster_id = done.stdout.split("cluster", 1)[1].split()[0]
    assert cluster_id.startswith("ec2r") and live_instances(moto, cluster_id) == []


@pytest.mark.timeout(180)
def test_a_cluster_on_symphony_closes_every_session(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    emulator = Emulator(tmp_path / "symphony", USERS, slots=4)
    monkeypatch.setenv("SCALER_SYMPHONY_USERNAME", "grid")
    monkeypatch.setenv("SCALER_SYMPHONY_PASSWORD", USERS["grid"])
    try:
        config = symphony_deployment(tmp_path, free_port(), emulator)
        with Cluster(SHAPE, config=config, provider="symphony", activation_timeout_seconds=120) as cluster:
            ours = [s for s in emulator.open_sessions() if s.tag.startswith(f"{cluster.cluster_id}.")]
            assert len(ours) == 2
            with Client(cluster.address) as client:
                assert client.submit(pow, 3, 4).result(60) == 81
        assert [s for s in emulator.open_sessions() if s.tag.startswith(f"{cluster.cluster_id}.")] == []
    finally:
        emulator.close()
