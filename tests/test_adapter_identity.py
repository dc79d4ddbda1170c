"""Cluster identity, the adapter lock, typed options, and how workers are launched: real processes throughout."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from scaler.adapters.identity import TAG_ADAPTER, TAG_CLUSTER, Identity, id_file, tags_from_arguments
from scaler.adapters.launch import CredentialKind, Credentials, LaunchBuilder, WorkerLaunch
from scaler.adapters.provider import WorkerGroup
from scaler.adapters.testing import stop

from scaler import Client, ClientConfig, LocalCluster
from scaler.utility.net import free_port
from scaler.utility.security import SECRET_ADDRESS_ENV, SECRET_ENV, find_secret, generate
from tests.conftest import wait_until

ENV = dict(os.environ, SCALER_LOG_LEVEL="WARNING")


def deployment(
    tmp_path: Path, port: int, top: str = "", scheduler: str = "", adapter: str = "", name: str = ""
) -> Path:
    config = tmp_path / f"deploy-{port}.toml"
    config.write_text(f"""{top}
[scheduler]
address = "tcp://127.0.0.1:{port}"
{scheduler}
[[adapter]]
provider = "local"
name = "{name or f"a{port}"}"
reconcile_interval = 0.3
state_dir = "{tmp_path / "state"}"
{adapter}
[[adapter.group]]
name = "cpu"
min_units = 1
max_units = 1
""")
    return config


@pytest.fixture
def spawn() -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []

    def start(*argv: str, **kw: Any) -> subprocess.Popen[bytes]:
        process: subprocess.Popen[bytes] = subprocess.Popen([sys.executable, "-m", *argv], env=ENV, **kw)
        started.append(process)
        return process

    yield start
    for process in reversed(started):
        stop(process)


def workers_of(adapter: str, cluster: str = "") -> list[psutil.Process]:
    """Live worker agents whose adapter tag is ``adapter`` (not their task processes, which share their argv)."""
    found = []
    for process in psutil.process_iter(["cmdline", "status", "ppid"]):
        cmdline = process.info["cmdline"] or []
        tags = tags_from_arguments(cmdline)
        if process.info["status"] == psutil.STATUS_ZOMBIE or tags.get(TAG_ADAPTER) != adapter:
            continue
        if not cluster or tags.get(TAG_CLUSTER) == cluster:
            found.append(process)
    pids = {p.pid for p in found}
    return [p for p in found if p.info["ppid"] not in pids]


def cluster_tags(adapter: str) -> set[str]:
    return {tags_from_arguments(p.cmdline())[TAG_CLUSTER] for p in workers_of(adapter)}


def test_a_second_adapter_for_the_same_cluster_refuses_until_the_first_dies(
    tmp_path: Path, spawn: Callable[..., subprocess.Popen[bytes]]
) -> None:
    port = free_port()
    config = deployment(tmp_path, port)
    spawn("scaler.scheduler.main", "--config", str(config))
    first = spawn("scaler.adapters.local.main", "--config", str(config))
    wait_until(lambda: len(workers_of(f"a{port}")) == 1, 60)
    argv = [sys.executable, "-m", "scaler.adapters.local.main", "--config", str(config)]
    second = subprocess.run(argv, capture_output=True, text=True, env=ENV, timeout=60)
    assert second.returncode == 2, second.stderr
    assert f"pid {first.pid} on host " in second.stderr and "already running" in second.stderr, second.stderr
    assert len(workers_of(f"a{port}")) == 1, "the refused adapter touched no unit"
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    third = spawn("scaler.adapters.local.main", "--config", str(config))
    wait_until(lambda: [p for p in workers_of(f"a{port}") if p.ppid() == third.pid], 60)
    assert third.poll() is None, "the lock died with its holder"


def test_two_clusters_with_one_adapter_name_and_state_dir_run_side_by_side(
    tmp_path: Path, spawn: Callable[..., subprocess.Popen[bytes]]
) -> None:
    name = f"side{free_port()}"
    started: dict[str, psutil.Process] = {}
    for cluster in ("blue", "blue-2"):  # one id is a prefix of the other
        port = free_port()
        config = deployment(tmp_path, port, top=f'cluster_id = "{cluster}"', name=name)
        spawn("scaler.scheduler.main", "--config", str(config), stdout=subprocess.PIPE)
        spawn("scaler.adapters.local.main", "--config", str(config))
        (started[cluster],) = wait_until(lambda c=cluster: workers_of(name, c), 60)
    time.sleep(3)  # ten reconcile rounds of each adapter
    for cluster, worker in started.items():
        assert workers_of(name, cluster) == [worker], f"the unit of cluster {cluster} was reaped or replaced"


def test_two_deployments_without_a_cluster_id_get_one_each(
    tmp_path: Path, spawn: Callable[..., subprocess.Popen[bytes]]
) -> None:
    name = f"own{free_port()}"
    adapters = []
    for _ in range(2):  # one state dir and adapter name, two schedulers: two deployments
        config = deployment(tmp_path, free_port(), name=name)
        spawn("scaler.scheduler.main", "--config", str(config), stdout=subprocess.PIPE)
        adapters.append(spawn("scaler.adapters.local.main", "--config", str(config)))
    wait_until(lambda: len(workers_of(name)) == 2, 60)
    assert len(cluster_tags(name)) == 2, "each deployment generated its own id"
    assert all(adapter.poll() is None for adapter in adapters), "neither was refused by the other's lock"


def test_the_cluster_id_is_kept_across_restarts_and_the_config_key_overrides(
    tmp_path: Path, spawn: Callable[..., subprocess.Popen[bytes]]
) -> None:
    port = free_port()
    config = deployment(tmp_path, port)
    spawn("scaler.scheduler.main", "--config", str(config))
    generated = set()
    for _ in range(2):
        adapter = spawn("scaler.adapters.local.main", "--config", str(config))
        wait_until(lambda: len(workers_of(f"a{port}")) == 1, 60)
        generated |= cluster_tags(f"a{port}")
        adapter.terminate()
        adapter.wait(20)
        wait_until(lambda: not workers_of(f"a{port}"), 20)
    kept = id_file(tmp_path / "state", f"tcp://127.0.0.1:{port}").read_text().strip()
    assert generated == {kept}, "one id, kept across a restart"
    config.write_text('cluster_id = "blue-7"\n' + config.read_text())
    spawn("scaler.adapters.local.main", "--config", str(config))
    wait_until(lambda: len(workers_of(f"a{port}")) == 1, 60)
    assert cluster_tags(f"a{port}") == {"blue-7"}


@pytest.mark.parametrize("command", ["scaler.adapters.local.main", "scaler.cluster.main"])
@pytest.mark.parametrize(
    ("options", "key", "why"),
    [
        ('options = { regoin = "us-east-1" }', "$.adapter[0].options.regoin", "unknown field"),
        ('options = { worker_args = "--x" }', "$.adapter[0].options.worker_args", "Expected `array`, got `str`"),
    ],
)
def test_an_unknown_or_mistyped_option_is_refused_with_file_key_and_reason(
    tmp_path: Path, command: str, options: str, key: str, why: str
) -> None:
    config = deployment(tmp_path, free_port(), adapter=options)
    argv = [sys.executable, "-m", command, "--config", str(config)]
    result = subprocess.run(argv, capture_output=True, text=True, env=ENV, timeout=60)
    assert result.returncode == 2, result.stderr
    assert f"{config}: {key}: {why}" in result.stderr, result.stderr


def test_a_bad_cluster_id_is_refused(tmp_path: Path) -> None:
    config = deployment(tmp_path, free_port(), top='cluster_id = "a.b"')
    argv = [sys.executable, "-m", "scaler.adapters.local.main", "--config", str(config)]
    result = subprocess.run(argv, capture_output=True, text=True, env=ENV, timeout=60)
    assert result.returncode == 2 and f"{config}: $.cluster_id: cluster_id 'a.b'" in result.stderr, result.stderr


def key_material(directory: Path) -> list[bytes]:
    """The secret keys' z85 text in a scaler_keygen directory."""
    found = []
    for path in directory.glob("*.key_secret"):
        for line in path.read_bytes().splitlines():
            if b"secret-key" in line:
                found.append(line.split(b'"')[1])
    return found


def assert_not_on_command_lines(processes: list[psutil.Process], secrets: list[bytes]) -> None:
    assert processes and secrets
    for process in processes:
        cmdline = Path(f"/proc/{process.pid}/cmdline").read_bytes()
        assert not [s for s in secrets if s in cmdline], f"a credential is on the command line of {process.pid}"


def test_no_credential_on_a_local_cluster_workers_command_line(
    tmp_path: Path, make_cluster: Callable[..., LocalCluster]
) -> None:
    plain = make_cluster(2)
    secret = find_secret(plain.address)
    assert secret is not None
    with Client(plain.address) as client:
        assert client.submit(pow, 2, 3).result(60) == 8, "the workers authenticate"
    workers = [psutil.Process(w.pid) for w in plain.workers]
    assert_not_on_command_lines(workers, [secret])
    assert all(p.environ().get(SECRET_ENV) == secret.decode() for p in workers), "the secret is in their environment"
    keys = generate(tmp_path / "keys")
    keyed = make_cluster(1, curve_keys=str(keys.directory))
    with Client(keyed.address, ClientConfig(curve_keys=str(keys.directory), connect_timeout=10)) as client:
        assert client.submit(pow, 2, 4).result(60) == 16
    assert_not_on_command_lines([psutil.Process(w.pid) for w in keyed.workers], key_material(keys.directory))


@pytest.mark.parametrize("mode", ["secret", "curve"])
def test_no_credential_on_an_adapter_workers_command_line_and_they_authenticate(
    tmp_path: Path, spawn: Callable[..., subprocess.Popen[bytes]], mode: str
) -> None:
    port = free_port()
    keys = generate(tmp_path / "keys") if mode == "curve" else None
    scheduler = f'curve_keys = "{keys.directory}"' if keys is not None else ""
    config = deployment(tmp_path, port, scheduler=scheduler)
    spawn("scaler.scheduler.main", "--config", str(config), stdout=subprocess.PIPE)
    spawn("scaler.adapters.local.main", "--config", str(config))
    address = f"tcp://127.0.0.1:{port}"
    client_config = ClientConfig(curve_keys=str(keys.directory) if keys else None, connect_timeout=10)
    with Client(address, client_config) as client:
        assert client.submit(pow, 3, 3).result(90) == 27, "the adapter's workers authenticate"
    if keys is not None:
        credentials = key_material(keys.directory)
    else:
        secret = find_secret(address)
        assert secret is not None
        credentials = [secret]
    assert_not_on_command_lines(workers_of(f"a{port}"), credentials)


def test_workers_dial_the_worker_scheduler_address(
    tmp_path: Path, spawn: Callable[..., subprocess.Popen[bytes]]
) -> None:
    port = free_port()
    config = deployment(tmp_path, port, adapter=f'worker_scheduler_address = "tcp://localhost:{port}"')
    spawn("scaler.scheduler.main", "--config", str(config), stdout=subprocess.PIPE)
    spawn("scaler.adapters.local.main", "--config", str(config))
    with Client(f"tcp://127.0.0.1:{port}") as client:
        assert client.submit(pow, 5, 2).result(90) == 25
    (worker,) = workers_of(f"a{port}")
    assert worker.cmdline()[3] == f"tcp://localhost:{port}", worker.cmdline()
    # The secret was only published (a file of this user's): the worker reads it there, nothing handed.
    assert SECRET_ENV not in worker.environ() and SECRET_ADDRESS_ENV not in worker.environ()


def test_credentials_reach_a_remote_worker_as_files_and_never_as_arguments(tmp_path: Path) -> None:
    keys = generate(tmp_path / "keys")
    identity = Identity("blue", "ssh")
    group = WorkerGroup("cpu", "cpu=2", 2, 0, 1)
    launch = LaunchBuilder(identity, "tcp://10.0.0.5:6378", keys.directory).build(group, "blue.ssh.cpu.x", "r1")
    files = launch.credentials.remote_files()
    assert set(files) == {"client.key_secret", "server.key"} and launch.workers == 2
    assert launch.credentials.remote_environment("/run/scaler/keys") == {"SCALER_CURVE_KEYS": "/run/scaler/keys"}
    argv = " ".join(launch.argv(1)).encode()
    assert not [s for s in key_material(keys.directory) if s in argv]
    assert "--tag scaler:cluster=blue --tag scaler:adapter=ssh --tag scaler:group=cpu" in argv.decode()
    secret = Credentials(b"s3cret", "tcp://127.0.0.1:6378")
    assert secret.kind is CredentialKind.CLUSTER_SECRET and secret.remote_files() == {}, "the secret stays on this host"
    assert "s3cret" not in repr(secret)
    with pytest.raises(ValueError, match="credentials go in"):
        WorkerLaunch("tcp://127.0.0.1:1", "cpu=1", environment={SECRET_ENV: "x"})
