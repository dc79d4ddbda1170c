"""``with Cluster(...)`` on EC2 (a moto server and the boot simulator) and Symphony (the REST emulator).

The same block as on local processes and SSH hosts: entered once the shape's minimum of workers
joined, a task runs, and after the block the provider's own records (EC2's instances by the cluster
tag, the emulator's open sessions) show none of the cluster's units. The deployment files are the
ones the providers' Ray tests use; the shape (``SimpleCluster``) takes the place of their groups.
"""

from __future__ import annotations

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


@pytest.mark.timeout(180)
def test_a_cluster_on_ec2_leaves_no_instance_running(moto: MotoEc2, simulator: BootSimulator, tmp_path: Path) -> None:
    config = ec2_deployment(tmp_path, free_port(), moto)

    def live(cluster_id: str) -> list[str]:
        filters = [{"Name": "tag:scaler:cluster", "Values": [cluster_id]}]
        reservations = moto.client().describe_instances(Filters=filters)["Reservations"]
        states = [i["State"]["Name"] for r in reservations for i in r["Instances"]]
        return [s for s in states if s not in ("terminated", "shutting-down")]

    with Cluster(SHAPE, config=config, provider="ec2", activation_timeout_seconds=120) as cluster:
        assert len(live(cluster.cluster_id)) == 2
        with Client(cluster.address) as client:
            assert client.submit(pow, 2, 4).result(60) == 16
    assert live(cluster.cluster_id) == []


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
