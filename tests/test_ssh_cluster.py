"""The SSH provider end to end, as a user runs it: ``scaler_cluster --config`` with an ``ssh`` adapter.

Real parts only: the hosts are OpenSSH servers on 127.0.0.2, .3, ... (``tests/sshd_harness.py``),
the scheduler and the workers are real processes the adapter starts over SSH, and tasks come from a
``Client`` or from the unchanged Ray examples on the compat layer (``import ray`` blocked, as in
tests/test_ec2_ray.py: no Ray cluster is ever started here). Each cluster keeps its hosts' unit records
under its own temporary ``state_dir``, so what a unit left behind is read off the records and ``/proc``.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from scaler import Client
from scaler.utility.net import free_port
from tests.conftest import wait_until
from tests.sshd_harness import SshFarm, group_pids, make_farm

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = ROOT / "configs"
HOST_PYTHON = "/usr/bin/python3"  # Debian's: no scaler, so a host using it must be bootstrapped
EXAMPLES = ("monte_carlo_pi", "map_reduce", "hyperparameter_sweep")
NO_RAY = "import sys, runpy; sys.modules['ray'] = None; sys.argv = ['scaler.compat.ray', *sys.argv[1:]]; "
NO_RAY += "runpy.run_module('scaler.compat.ray', run_name='__main__')"


# -- the example deployment file ------------------------------------------------------------------


def test_the_example_config_loads_and_a_misspelt_option_is_refused_by_key_path(tmp_path: Path) -> None:
    from scaler.config import ConfigError, load_config

    config = load_config(CONFIGS / "ssh.toml")
    (adapter,) = config.adapter
    assert adapter.provider == "ssh" and sorted(adapter.options["hosts"]) == ["box1", "box2", "gpubox", "lab"]
    bad = tmp_path / "bad.toml"
    bad.write_text((CONFIGS / "ssh.toml").read_text().replace("tunnel_port =", "tunnel_prot ="))
    with pytest.raises(ConfigError, match=r"\$\.adapter\[0\]\.options\.hosts\[\.\.\.\]\.tunnel_prot: unknown field"):
        load_config(bad)
    bad.write_text((CONFIGS / "ssh.toml").read_text().replace("unknown_hosts =", "unknown_host ="))
    with pytest.raises(ConfigError, match=r"\$\.adapter\[0\]\.options\.unknown_host: unknown field"):
        load_config(bad)


# -- clusters on the farm ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def farm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshFarm]:
    farm = make_farm(tmp_path_factory.mktemp("ssh"))
    for name in ("a", "b", "bare", "behind"):
        farm.add(name)
    try:
        yield farm
    finally:
        farm.close()


def host_table(farm: SshFarm, name: str, **settings: Any) -> str:
    host = farm.hosts[name]
    lines = [f"[adapter.options.hosts.{name}]", f'address = "{host.address}"', f"port = {host.port}"]
    lines += [f"{key} = {json.dumps(value)}" for key, value in settings.items()]
    return "\n".join(lines) + "\n"


class SshCluster:
    """``scaler_cluster --config`` as a process, with an ssh adapter whose one group (``cpu``) keeps
    ``units`` units on the given hosts; the unit records its hosts keep, read where they live."""

    def __init__(
        self, farm: SshFarm, directory: Path, hosts: str, units: int, adapter_state: Path | None = None
    ) -> None:
        self.port = free_port()
        self.cluster_id = f"ssh{self.port}"
        self.address = f"tcp://127.0.0.1:{self.port}"
        self.remote = directory / "remote"  # the options' state_dir, on every "host"
        config = directory / "ssh.toml"
        config.write_text(f"""
cluster_id = "{self.cluster_id}"
[scheduler]
address = "{self.address}"
[scaling]
idle_timeout = 120
stabilization_window = 0
interval = 0.2
[[adapter]]
provider = "ssh"
state_dir = "{adapter_state or directory / "state"}"
reconcile_interval = 0.5
call_timeout = 300
[adapter.options]
key_file = "{farm.user_key}"
known_hosts = "{farm.known_hosts}"
python = "{sys.executable}"
state_dir = "{self.remote}"
worker_args = ["--death-timeout", "20"]
terminate_grace = 3
connect_timeout = 5
offline_bootstrap = true
{hosts}
[[adapter.group]]
name = "cpu"
workers_per_unit = "auto"
min_units = {units}
max_units = {units}
""")
        argv = [sys.executable, "-m", "scaler.cluster.main", "--config", str(config)]
        env = dict(os.environ, SCALER_LOG_LEVEL="WARNING")
        self.process = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, text=True)
        if self.process.stdout is None or "scaler cluster at" not in self.process.stdout.readline():
            self.stop()
            raise RuntimeError("scaler_cluster did not start")

    def records(self) -> list[dict[str, Any]]:
        """The unit records on the hosts (they all share this machine's disk; each names its host)."""
        directory = self.remote / "units" / self.cluster_id
        found = []
        for path in sorted(directory.glob("*.json")) if directory.is_dir() else []:
            try:
                found.append(json.loads(path.read_text()))
            except (OSError, ValueError):
                pass  # being written or removed right now
        return found

    def hosts_running(self) -> list[str]:
        return sorted(str(record["host"]) for record in self.records())

    def run(self, function: Any, *args: Any, timeout: float = 120.0) -> Any:
        with Client(self.address) as client:
            return client.submit(function, *args).result(timeout)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(90)


def command_line(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode().rstrip("\0").split("\0")
    except OSError:
        return []


# Tasks are builtins: a function of this module pickles by reference, and the hosts' workers (their
# working directory is the login user's home) cannot import ``tests``.
WHERE = "(__import__('sys').executable, __import__('scaler').__file__)"  # eval'd on a worker


@pytest.fixture(scope="module")
def two_hosts(farm: SshFarm, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshCluster]:
    """One unit on each of hosts a and b (one slot each, sized to the host: capabilities = "auto")."""
    hosts = host_table(farm, "a", group="cpu", capabilities="auto")
    hosts += host_table(farm, "b", group="cpu", capabilities="auto")
    cluster = SshCluster(farm, tmp_path_factory.mktemp("two-hosts"), hosts, units=2)
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.mark.timeout(120)
def test_scaler_cluster_runs_a_task_on_units_on_two_hosts(two_hosts: SshCluster) -> None:
    assert two_hosts.run(pow, 9, 2) == 81
    assert wait_until(lambda: two_hosts.hosts_running() == ["a", "b"], timeout=30), "one unit on each host"
    with Client(two_hosts.address) as client:

        def both_units_seen() -> bool:
            return sorted(str(u["group"]) for u in client.scheduler_status().units) == ["cpu", "cpu"]

        assert wait_until(both_units_seen, timeout=30), "the scheduler sees the two units"


@pytest.mark.timeout(240)
def test_the_ray_examples_run_unchanged_on_ssh_workers(two_hosts: SshCluster) -> None:
    env = dict(os.environ, SCALER_LOG_LEVEL="ERROR")
    for name in EXAMPLES:
        argv = [sys.executable, "-c", NO_RAY, "--address", two_hosts.address, f"examples/ray/{name}.py"]
        result = subprocess.run(argv, env=env, cwd=ROOT, capture_output=True, text=True, timeout=150)
        assert result.returncode == 0, f"{name} failed:\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}"
    # The hosts' units are the cluster's only workers. (The scheduler may shed a unit and launch it again
    # meanwhile: a unit listed before its launch call answered is counted twice for a moment.)
    assert wait_until(lambda: two_hosts.hosts_running() == ["a", "b"], timeout=30)


@pytest.mark.timeout(120)
def test_terminating_scaler_cluster_ends_every_unit_on_the_hosts(two_hosts: SshCluster) -> None:
    assert wait_until(lambda: len(two_hosts.records()) == 2, timeout=60)
    groups = [int(record["pgid"]) for record in two_hosts.records()]
    assert all(group_pids(pgid) for pgid in groups), "each unit's process group runs"
    two_hosts.stop()
    assert two_hosts.process.returncode == 0
    assert two_hosts.records() == [], "no unit record is left on the hosts"
    assert wait_until(lambda: not any(group_pids(pgid) for pgid in groups), timeout=10), "no unit process is left"


@pytest.mark.timeout(60)
def test_two_launches_at_once_never_put_more_units_on_a_host_than_its_slots(farm: SshFarm, tmp_path: Path) -> None:
    """The runner launches on several threads: both launches once counted the same free slot (both units
    went to host a, whose max_units is 1, and b stayed empty)."""
    from scaler.adapters.identity import Identity
    from scaler.adapters.launch import LaunchBuilder
    from scaler.adapters.provider import WorkerGroup
    from scaler.adapters.spec import ProviderContext
    from scaler.adapters.ssh.provider import SshProvider
    from scaler.adapters.ssh.spec import SshHost, SshOptions

    identity = Identity(f"race{free_port()}", "ssh")
    address = f"tcp://127.0.0.1:{free_port()}"  # nobody listens: the workers are ended below
    context = ProviderContext(identity, tmp_path / "state", address, LaunchBuilder(identity, address))
    hosts = {
        name: SshHost(address=farm.hosts[name].address, port=farm.hosts[name].port, group="cpu", max_units=1)
        for name in ("a", "b")
    }
    options = SshOptions(
        hosts=hosts,
        key_file=str(farm.user_key),
        known_hosts=str(farm.known_hosts),
        python=sys.executable,
        state_dir=str(tmp_path / "remote"),
        worker_args=("--death-timeout", "10"),
        terminate_grace=1.0,
    )
    provider = SshProvider(context, options)
    group = WorkerGroup("cpu", "cpu=1", 1, 0, 2)
    try:
        with ThreadPoolExecutor(2) as pool:
            launched = list(pool.map(lambda request: provider.launch(group, 1, request), ["r1", "r2"]))
        assert sorted(unit.details["host"] for units in launched for unit in units) == ["a", "b"]
    finally:
        provider.terminate([unit.unit_id for unit in provider.list_units()])
    assert provider.list_units() == []


def environment(pid: int) -> dict[str, str]:
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes().decode(errors="replace")
    except OSError:
        return {}
    return dict(entry.partition("=")[::2] for entry in raw.split("\0") if entry)


@pytest.mark.timeout(60)
def test_a_handed_loopback_secret_goes_to_tunnelled_hosts_only(
    farm: SshFarm, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A host without the tunnel dials its *own* 127.0.0.1: whatever listens there must not be handed the
    scheduler's secret. Only the tunnelled host's workers, which reach the scheduler through it, get it."""
    from scaler.adapters.identity import Identity
    from scaler.adapters.launch import LaunchBuilder
    from scaler.adapters.provider import WorkerGroup
    from scaler.adapters.spec import ProviderContext
    from scaler.adapters.ssh.provider import SshProvider
    from scaler.adapters.ssh.spec import SshHost, SshOptions

    from scaler.utility.security import SECRET_ADDRESS_ENV, SECRET_ENV

    address = f"tcp://127.0.0.1:{free_port()}"  # nobody listens: only the workers' environments are read
    monkeypatch.setenv(SECRET_ENV, "a-handed-secret")  # as a cluster hands it to the processes it starts
    monkeypatch.setenv(SECRET_ADDRESS_ENV, address)
    identity = Identity(f"secret{free_port()}", "ssh")
    context = ProviderContext(identity, tmp_path / "state", address, LaunchBuilder(identity, address))
    hosts = {
        "a": SshHost(address=farm.hosts["a"].address, port=farm.hosts["a"].port, group="open"),
        "behind": SshHost(
            address=farm.hosts["behind"].address,
            port=farm.hosts["behind"].port,
            group="tunnelled",
            tunnel=True,
            tunnel_port=free_port(),
        ),
    }
    options = SshOptions(
        hosts=hosts,
        key_file=str(farm.user_key),
        known_hosts=str(farm.known_hosts),
        python=sys.executable,
        state_dir=str(tmp_path / "remote"),
        worker_args=("--death-timeout", "10"),
        terminate_grace=1.0,
    )
    provider = SshProvider(context, options)
    records = tmp_path / "remote" / "units" / identity.cluster_id
    try:
        for group in ("open", "tunnelled"):
            provider.launch(WorkerGroup(group, "cpu=1", 1, 0, 1), 1, f"r-{group}")
        secrets = {}
        for path in records.glob("*.json"):
            record = json.loads(path.read_text())
            pids = wait_until(functools.partial(group_pids, int(record["pgid"])), timeout=10)
            secrets[record["host"]] = {environment(pid).get(SECRET_ENV) for pid in pids}
        assert secrets == {"a": {None}, "behind": {"a-handed-secret"}}
        assert list(records.glob("*.env")) == [], "the secret's file is removed once read"
    finally:
        provider.terminate([unit.unit_id for unit in provider.list_units()])


@pytest.mark.timeout(240)
def test_a_bare_host_is_bootstrapped_from_the_wheel_and_runs_a_task(farm: SshFarm, tmp_path: Path) -> None:
    if not os.access(HOST_PYTHON, os.X_OK):
        pytest.skip(f"{HOST_PYTHON} is missing")
    bare = subprocess.run([HOST_PYTHON, "-c", "import scaler"], capture_output=True, cwd="/", env={})
    assert bare.returncode != 0, f"{HOST_PYTHON} must be without scaler for this test"
    venv = tmp_path / "host-venv"
    hosts = host_table(farm, "bare", group="cpu", python=HOST_PYTHON, bootstrap=True, venv=str(venv))
    cluster = SshCluster(farm, tmp_path, hosts, units=1)
    try:
        python, module = cluster.run(eval, WHERE, timeout=200)
        assert python == f"{venv}/bin/python"
        assert module.startswith(f"{venv}/lib/"), "the worker imports the scaler installed from the wheel"
        assert cluster.hosts_running() == ["bare"]
    finally:
        cluster.stop()
    assert cluster.records() == []


@pytest.mark.timeout(120)
def test_a_tunnelled_host_dials_its_own_end_of_the_tunnel(farm: SshFarm, tmp_path: Path) -> None:
    tunnel_port = free_port()
    hosts = host_table(farm, "behind", group="cpu", tunnel=True, tunnel_port=tunnel_port)
    cluster = SshCluster(farm, tmp_path, hosts, units=1)
    try:
        assert cluster.run(pow, 12, 2) == 144
        (record,) = cluster.records()
        assert record["host"] == "behind"
        lines = [command_line(pid) for pid in group_pids(int(record["pgid"]))]
        workers = [argv for argv in lines if "scaler.worker.main" in argv]
        assert workers, f"no worker in the unit's process group: {lines}"
        for argv in workers:
            assert f"tcp://127.0.0.1:{tunnel_port}" in argv, argv
            assert cluster.address not in argv, argv
    finally:
        cluster.stop()
    assert cluster.records() == []
