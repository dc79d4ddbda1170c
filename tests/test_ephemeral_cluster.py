"""``with Cluster(...)`` and ``scaler run``: a cluster for one block or one program, and nothing after it.

Real processes throughout: the cluster is a ``scaler_cluster`` child, its units are worker processes
(local and fake providers) or units on real sshd hosts (SSH). After every case the providers' own
ground truth is read from outside the code under test: the process table for worker processes
carrying the cluster's tag, and the hosts' unit records for SSH.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from scaler import Client, Cluster, ClusterActivationError, ClusterConfig, NodeConfig, ScalingGroup, SimpleCluster
from tests.conftest import wait_until
from tests.sshd_harness import SshFarm, make_farm

ROOT = Path(__file__).resolve().parent.parent


def tagged(cluster_id: str) -> list[int]:
    """Worker processes of ``cluster_id`` on this host (the local providers' and SSH units' ground truth)."""
    found = []
    for process in psutil.process_iter(["cmdline"]):
        if f"scaler:cluster={cluster_id}" in " ".join(process.info["cmdline"] or []):
            found.append(process.pid)
    return found


def test_simple_cluster_enters_with_its_minimum_joined_and_leaves_nothing() -> None:
    shape = SimpleCluster(n_nodes=2, node_config=NodeConfig(cpu=1, memory_gb=0.5), max_nodes=3)
    with Cluster(shape) as cluster:
        with Client(cluster.address) as client:
            workers = client.scheduler_status().workers
            assert len(workers) >= 2, "the block starts once the minimum has joined"
            assert all("memory=536870912" in str(w["capabilities"]) for w in workers)
            assert client.submit(pow, 2, 8).result(30) == 256
        assert tagged(cluster.cluster_id)
    assert not tagged(cluster.cluster_id)


def test_an_exception_in_the_block_propagates_and_the_cluster_goes() -> None:
    cluster = Cluster(SimpleCluster(n_nodes=1, node_config=NodeConfig(cpu=1, memory_gb=1)))
    with pytest.raises(ZeroDivisionError), cluster:
        assert tagged(cluster.cluster_id)
        print(1 / 0)
    assert not tagged(cluster.cluster_id)


def test_activation_timeout_names_the_slow_group_and_tears_down(tmp_path: Path) -> None:
    config = tmp_path / "fake.toml"
    config.write_text(
        textwrap.dedent("""
        [scheduler]
        address = "tcp://127.0.0.1:6378"
        [[adapter]]
        provider = "fake"
        name = "slowboot"
        reconcile_interval = 0.3
        options = { boot_seconds = 60 }
        [[adapter.group]]
        name = "cpu"
        min_units = 1
        max_units = 1
        """)
    )
    cluster = Cluster(config=config, activation_timeout_seconds=3)
    started = time.monotonic()
    with pytest.raises(
        ClusterActivationError, match=r"within 3s: slowboot/cpu 0/1 workers; waiting on unit .* booting"
    ):
        with cluster:
            pass
    assert time.monotonic() - started < 60
    assert not tagged(cluster.cluster_id)


def test_the_shape_is_validated_with_sematics_rules() -> None:
    node = NodeConfig(cpu=2, memory_gb=4, gpu_count=1)
    with pytest.raises(ValueError, match="min_workers"):
        ScalingGroup(node, min_workers=3, max_workers=2)
    with pytest.raises(ValueError, match="max_nodes"):
        SimpleCluster(n_nodes=4, node_config=node, max_nodes=2)
    with pytest.raises(ValueError, match="cpu"):
        NodeConfig(cpu=-1, memory_gb=1)
    shaped = ClusterConfig(head_node=node, scaling_groups=[ScalingGroup(node, 1, 4)])
    (group,) = shaped.groups()
    assert (group.capabilities, group.min_units, group.max_units) == ("cpu=2,gpu=1,memory=4294967296", 1, 4)
    with pytest.raises(ValueError, match="needs a deployment file"):
        Cluster(provider="ec2")


def kill_the_caller_of(cluster: str) -> None:
    """A program inside ``with <cluster> as c:`` is SIGKILLed: its cluster's workers must still go."""
    body = "    print(c.cluster_id, flush=True)\n    time.sleep(300)\n"
    script = f"import time\nfrom scaler import Cluster, NodeConfig, SimpleCluster\nwith {cluster} as c:\n{body}"
    caller = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert caller.stdout is not None
    cluster_id = caller.stdout.readline().strip()
    assert cluster_id and tagged(cluster_id)
    caller.kill()
    caller.wait(10)
    wait_until(lambda: not tagged(cluster_id), timeout=60)


def test_a_sigkilled_caller_takes_its_cluster_with_it() -> None:
    kill_the_caller_of("Cluster(SimpleCluster(n_nodes=1, node_config=NodeConfig(cpu=1, memory_gb=1)))")


# -- scaler run ------------------------------------------------------------------------------------


def scaler_run(*argv: str, **popen: object) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "scaler.cluster.command", "run", *argv]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)  # type: ignore[call-overload]


def test_scaler_run_runs_an_unchanged_ray_program_and_passes_its_exit_code(tmp_path: Path) -> None:
    done = scaler_run("--quiet", str(ROOT / "examples" / "ray" / "monte_carlo_pi.py"))
    out, err = done.communicate(timeout=240)
    assert done.returncode == 0, err
    assert "pi" in out.lower()
    failing = tmp_path / "failing.py"
    failing.write_text(
        "import ray\nray.init()\nprint(ray.get(ray.remote(lambda: 41).remote()) + 1)\nraise SystemExit(7)\n"
    )
    done = scaler_run("--quiet", str(failing))
    out, err = done.communicate(timeout=240)
    assert (done.returncode, out.strip()) == (7, "42"), err


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_to_scaler_run_reaches_the_program_and_the_cluster_goes(signum: int, tmp_path: Path) -> None:
    program = tmp_path / "wait.py"
    program.write_text(
        "import os, time\nfrom scaler import Client\n"
        "with Client() as c:\n    print(c.submit(os.getpid).result(60), flush=True)\n    time.sleep(300)\n"
    )
    running = scaler_run("--quiet", str(program), start_new_session=True)
    assert running.stdout is not None
    worker_pid = int(running.stdout.readline())
    cluster_id = next(t for t in psutil.Process(worker_pid).cmdline() if t.startswith("scaler:cluster=")).split("=")[1]
    os.kill(running.pid, signum)
    assert running.wait(120) == 128 + signum
    assert not tagged(cluster_id)


# -- over SSH ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def farm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshFarm]:
    farm = make_farm(tmp_path_factory.mktemp("ssh"))
    farm.add("h1")
    try:
        yield farm
    finally:
        farm.close()


def test_a_cluster_on_ssh_hosts_leaves_no_unit_on_them(farm: SshFarm, tmp_path: Path) -> None:
    host = farm.hosts["h1"]
    state = tmp_path / "remote"
    config = tmp_path / "ssh.toml"
    config.write_text(
        textwrap.dedent(f"""
        [scheduler]
        address = "tcp://127.0.0.1:6378"
        [[adapter]]
        provider = "ssh"
        reconcile_interval = 0.5
        [adapter.options]
        key_file = "{farm.user_key}"
        known_hosts = "{farm.known_hosts}"
        state_dir = "{state}"
        worker_args = ["--death-timeout", "20"]
        [adapter.options.hosts.h1]
        address = "{host.address}"
        port = {host.port}
        group = "cpu"
        max_units = 2
        python = "{sys.executable}"
        [[adapter.group]]
        name = "cpu"
        max_units = 1
        """)
    )
    shape = SimpleCluster(n_nodes=2, node_config=NodeConfig(cpu=1, memory_gb=1))
    with Cluster(shape, config=config, provider="ssh") as cluster:
        with Client(cluster.address) as client:
            assert len(client.scheduler_status().workers) == 2
            assert client.submit(pow, 5, 2).result(60) == 25
        records = list((state / "units" / cluster.cluster_id).glob("*.json"))
        assert len(records) == 2
    assert not list((state / "units" / cluster.cluster_id).glob("*.json"))
    assert not tagged(cluster.cluster_id)


def test_forward_logs_tags_each_line_of_a_tasks_output_with_the_task(capfd: pytest.CaptureFixture[str]) -> None:
    def chatty(n: int) -> int:
        print(f"line one of {n}")
        print(f"line two of {n}", flush=True)
        return n

    with Cluster(SimpleCluster(n_nodes=1, node_config=NodeConfig(cpu=1, memory_gb=1)), forward_logs=True) as cluster:
        with Client(cluster.address) as client:
            future = client.submit(chatty, 7)
            assert future.result(30) == 7
            time.sleep(0.5)
    out = capfd.readouterr().out
    tagged_lines = [line for line in out.splitlines() if "of 7" in line]
    assert tagged_lines == [f"(task {future.task_id}) line one of 7", f"(task {future.task_id}) line two of 7"], out
    assert "SCALER_STREAM_OUTPUT" not in os.environ


def head_deployment(farm: SshFarm, tmp_path: Path) -> Path:
    """A deployment whose scheduler and local adapter run on the farm's host h1, reached as a [head]."""
    host = farm.hosts["h1"]
    config = tmp_path / "head.toml"
    config.write_text(
        textwrap.dedent(f"""
        [head]
        address = "{host.address}"
        port = {host.port}
        key_file = "{farm.user_key}"
        known_hosts = "{farm.known_hosts}"
        python = "{sys.executable}"
        [[adapter]]
        provider = "local"
        reconcile_interval = 0.5
        [[adapter.group]]
        name = "cpu"
        min_units = 1
        max_units = 1
        """)
    )
    return config


def test_a_cluster_with_a_head_runs_its_scheduler_there_behind_a_forwarded_port(farm: SshFarm, tmp_path: Path) -> None:
    config = head_deployment(farm, tmp_path)
    with Cluster(config=config) as cluster:
        with Client(cluster.address) as client:
            status = client.scheduler_status()
            assert len(status.workers) == 1
            assert client.submit(pow, 6, 2).result(60) == 36
        assert tagged(cluster.cluster_id)
        assert cluster.address.startswith("tcp://127.0.0.1:") and cluster.address != cluster.scheduler_address
    wait_until(lambda: not tagged(cluster.cluster_id), timeout=30)
    assert "SCALER_CLUSTER_SECRET" not in os.environ


def test_a_killed_caller_ends_its_heads_cluster_when_the_session_drops(farm: SshFarm, tmp_path: Path) -> None:
    kill_the_caller_of(f"Cluster(config={str(head_deployment(farm, tmp_path))!r})")


def test_a_group_whose_max_exceeds_its_min_scales_with_the_queue_inside_the_block() -> None:
    def hold(seconds: float) -> float:
        time.sleep(seconds)
        return seconds

    shape = SimpleCluster(n_nodes=1, node_config=NodeConfig(cpu=1, memory_gb=0.5), max_nodes=3)
    with Cluster(shape) as cluster, Client(cluster.address) as client:
        assert len(client.scheduler_status().workers) == 1
        futures = [client.submit(hold, 1.0) for _ in range(12)]
        wait_until(lambda: len(client.scheduler_status().workers) == 3, timeout=60)
        assert [f.result(120) for f in futures] == [1.0] * 12
