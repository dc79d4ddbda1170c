"""The SSH provider through real OpenSSH servers on loopback addresses standing for hosts.

Both conformance suites run unchanged on ``SshProvider``: units start over SSH (paramiko) as process
groups recorded on the host, their workers dial back to a real scheduler and run tasks. Then what is
SSH's own: an unknown host key refused, a partition (one sshd stopped and its workers frozen: the
units are listed failed, the tasks rerun on another host, and the leftovers are reaped when it
returns), CURVE keys sent over SFTP and never on a command line, and the tunnel.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from scaler.adapters.errors import CapacityError, ConfigurationError, PartialLaunchError
from scaler.adapters.identity import Identity
from scaler.adapters.launch import LaunchBuilder
from scaler.adapters.provider import SyncProvider, UnitState, WorkerGroup
from scaler.adapters.runner import AdapterRunner, RunnerConfig
from scaler.adapters.spec import ProviderContext
from scaler.adapters.ssh.connection import UnknownHostKeyError
from scaler.adapters.ssh.provider import SshProvider
from scaler.adapters.ssh.spec import SshHost, SshOptions
from scaler.adapters.testing import GROUP, ProviderConformance, RunnerConformance, start_scheduler, stop

from scaler.client.client import Client
from scaler.utility.capabilities import parse_capabilities
from scaler.utility.net import free_port
from scaler.utility.security import generate
from tests.conftest import wait_until
from tests.sshd_harness import SshFarm, group_pids, make_farm

WORKER_ARGS = ("--death-timeout", "20")
ProviderMaker = Callable[..., SshProvider]


@pytest.fixture(scope="module")
def farm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshFarm]:
    farm = make_farm(tmp_path_factory.mktemp("ssh"))
    for name in ("a", "b", "c"):
        farm.add(name)
    farm.add("stranger", known=False)
    try:
        yield farm
    finally:
        farm.close()


@pytest.fixture
def scheduler_address() -> str:
    return f"tcp://127.0.0.1:{free_port()}"


def inventory(farm: SshFarm, **hosts: dict[str, Any]) -> dict[str, SshHost]:
    found = {}
    for name, values in hosts.items():
        host = farm.hosts[values.pop("on", name)]
        found[name] = SshHost(address=host.address, port=host.port, python=sys.executable, **values)
    return found


CONFORMANCE = {"a": {"group": "conformance", "max_units": 3}, "b": {"group": "conformance", "max_units": 3}}


@pytest.fixture
def ssh_factory(farm: SshFarm, scheduler_address: str, tmp_path: Path) -> Iterator[ProviderMaker]:
    made: list[SshProvider] = []

    def make(cluster_id: str, hosts: dict[str, dict[str, Any]] | None = None, **options: Any) -> SshProvider:
        identity = Identity(cluster_id, "ssh")
        launches = options.pop("launches", None) or LaunchBuilder(identity, scheduler_address)
        context = ProviderContext(identity, tmp_path / "state", scheduler_address, launches)
        chosen = hosts or {**CONFORMANCE, "c": {"group": "slow"}}
        values: dict[str, Any] = {
            "hosts": inventory(farm, **{k: dict(v) for k, v in chosen.items()}),
            "key_file": str(farm.user_key),
            "known_hosts": str(farm.known_hosts),
            "state_dir": str(tmp_path / "remote"),
            "worker_args": WORKER_ARGS,
            "terminate_grace": 3.0,
            "retry_unreachable": 1.0,
            "connect_timeout": 3.0,
        }
        provider = SshProvider(context, SshOptions(**{**values, **options}))
        made.append(provider)
        return provider

    yield make
    for provider in made:
        for name in [n for n in provider.hosts if farm.hosts.get(n) and farm.hosts[n].process is None]:
            farm.start(name)
        provider.down.clear()
        provider.terminate([u.unit_id for u in provider.list_units()])


class TestSshProvider(ProviderConformance, RunnerConformance):
    @pytest.fixture
    def provider_factory(self, ssh_factory: ProviderMaker) -> Callable[[str], SyncProvider]:
        return ssh_factory

    @pytest.fixture
    def provider(self, ssh_factory: ProviderMaker, cluster_id: str) -> SyncProvider:
        return ssh_factory(cluster_id)

    @pytest.fixture
    def broken_provider(self, ssh_factory: ProviderMaker, cluster_id: str) -> SyncProvider:
        return ssh_factory(cluster_id, {"stranger": {"group": "conformance"}})  # its host key is unknown


def freeze(pgid: int, frozen: bool) -> None:
    os.killpg(pgid, signal.SIGSTOP if frozen else signal.SIGCONT)


def cmdlines(pgid: int) -> list[str]:
    found = []
    for pid in group_pids(pgid):
        try:
            found.append(Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode())
        except OSError:
            pass
    return found


def record_of(provider: SshProvider, unit_id: str) -> dict[str, Any]:
    path = Path(provider.links["a"].expand(provider.records)) / f"{unit_id}.json"
    found: dict[str, Any] = json.loads(path.read_text())
    return found


@contextlib.contextmanager
def running(provider: SshProvider, config: RunnerConfig) -> Iterator[AdapterRunner]:
    runner = AdapterRunner(provider, config)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_until_complete, args=(runner.run(),), daemon=True)
    thread.start()
    try:
        yield runner
    finally:
        loop.call_soon_threadsafe(runner.stop)
        thread.join(60)


def workers(client: Client) -> int:
    return int(client.scheduler_status().status["workers"])


def test_an_unknown_host_key_is_refused_by_name_and_accept_new_records_it(
    ssh_factory: ProviderMaker, farm: SshFarm, tmp_path: Path
) -> None:
    provider = ssh_factory(f"unk{secrets.token_hex(3)}", {"stranger": {"group": "conformance"}})
    with pytest.raises(UnknownHostKeyError, match=r"host stranger .*not in .*known_hosts.*accept-new"):
        provider.launch(GROUP, 1, "r1")
    assert not UnknownHostKeyError.retryable, "a refused host key stops the group until the inventory is fixed"
    known = tmp_path / "known_hosts"
    hosts = {"stranger": {"group": "conformance"}}
    trusting = ssh_factory(f"unk{secrets.token_hex(3)}", hosts, known_hosts=str(known), unknown_hosts="accept-new")
    (unit,) = trusting.launch(GROUP, 1, "r1")
    assert farm.hosts["stranger"].host_key in known.read_text()
    trusting.terminate([unit.unit_id])


def test_an_unreachable_host_is_skipped_and_its_share_reported_as_capacity(
    ssh_factory: ProviderMaker, farm: SshFarm
) -> None:
    provider = ssh_factory(
        f"down{secrets.token_hex(3)}", {"a": {"group": "conformance"}, "c": {"group": "conformance"}}
    )
    farm.stop("c")
    try:
        with pytest.raises(PartialLaunchError) as caught:
            provider.launch(GROUP, 2, "r1")
        assert [u.details["host"] for u in caught.value.units] == ["a"]
        assert isinstance(caught.value.cause, CapacityError) and "host c" in str(caught.value.cause)
    finally:
        farm.start("c")


def test_a_partitioned_host_fails_its_unit_its_tasks_rerun_elsewhere_and_its_leftovers_are_reaped(
    ssh_factory: ProviderMaker, farm: SshFarm, scheduler_address: str
) -> None:
    hosts = {"a": {"group": "part"}, "b": {"group": "part"}, "c": {"group": "part"}}
    provider = ssh_factory(f"part{secrets.token_hex(3)}", hosts)
    group = WorkerGroup("part", "cpu=1", workers_per_unit=1, min_units=2, max_units=2)
    config = RunnerConfig("ssh", scheduler_address, (group,), reconcile_interval=0.5, peer_timeout=3.0)
    scheduler = start_scheduler(scheduler_address, peer_timeout=3.0)
    pgid = 0

    def slow_square(x: int) -> int:  # defined here: pickled by value, as the workers cannot import tests
        time.sleep(1.0)
        return x * x

    try:
        with running(provider, config) as runner, Client(scheduler_address) as client:
            wait_until(lambda: workers(client) == 2, timeout=60)
            on_b = [u for u in provider.seen["b"].values()]
            assert len(on_b) == 1 and not provider.seen["c"], "one unit on each of a and b"
            unit_id = on_b[0].unit_id
            pgid = int(record_of(provider, unit_id)["pgid"])
            futures = [client.submit(slow_square, i) for i in range(8)]
            time.sleep(1.5)
            farm.stop("b")
            freeze(pgid, True)  # loopback cannot be cut: a host that vanished is a silent one
            assert [f.result(120) for f in futures] == [i * i for i in range(8)], "every task ran, once each"
            wait_until(lambda: runner.table.units[unit_id].state is UnitState.FAILED, timeout=60)
            assert "host b did not answer" in runner.table.units[unit_id].cause
            wait_until(lambda: len(provider.seen["c"]) == 1, timeout=60)  # its replacement
            farm.start("b")
            path = Path(provider.links["b"].expand(provider.records)) / f"{unit_id}.json"
            wait_until(lambda: not group_pids(pgid) and not path.exists(), timeout=60)  # reaped when b answers
    finally:
        if pgid and group_pids(pgid):
            os.killpg(pgid, signal.SIGKILL)
        stop(scheduler)


def test_curve_keys_reach_the_worker_over_sftp_never_its_command_line(
    ssh_factory: ProviderMaker, tmp_path: Path, scheduler_address: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys = generate(tmp_path / "keys")
    identity = Identity(f"curve{secrets.token_hex(3)}", "ssh")
    launches = LaunchBuilder(identity, scheduler_address, keys.directory)
    provider = ssh_factory(identity.cluster_id, {"a": {"group": "conformance"}}, launches=launches)
    argv = [sys.executable, "-m", "scaler.scheduler.main", scheduler_address, "--curve-keys", str(keys.directory)]
    scheduler = subprocess.Popen(argv, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
    try:
        assert scheduler.stdout is not None and scheduler.stdout.readline().startswith(b"SCALER_ADDRESS")
        (unit,) = provider.launch(GROUP, 1, "r1")
        monkeypatch.setenv("SCALER_CURVE_KEYS", str(keys.directory))
        with Client(scheduler_address) as client:
            assert client.submit(pow, 2, 10).result(60) == 1024
        placed = Path(provider.links["a"].expand(provider.records)) / f"{unit.unit_id}.keys"
        assert {p.name: p.stat().st_mode & 0o777 for p in placed.iterdir()} == {
            "client.key_secret": 0o600,
            "server.key": 0o600,
        }
        assert placed.stat().st_mode & 0o777 == 0o700
        secret = (keys.directory / "client.key_secret").read_text()
        lines = cmdlines(int(record_of(provider, unit.unit_id)["pgid"]))
        assert lines and not any(secret in line or "key_secret" in line for line in lines)
        provider.terminate([unit.unit_id])
        assert not placed.exists(), "the unit's keys go with it"
    finally:
        stop(scheduler)


def test_the_tunnel_carries_a_workers_connection_through_the_ssh_session(
    ssh_factory: ProviderMaker, scheduler_address: str
) -> None:
    port = free_port()
    hosts = {"a": {"group": "conformance", "tunnel": True, "tunnel_port": port}}
    provider = ssh_factory(f"tun{secrets.token_hex(3)}", hosts)
    scheduler = start_scheduler(scheduler_address)
    try:
        (unit,) = provider.launch(GROUP, 1, "r1")
        lines = cmdlines(int(record_of(provider, unit.unit_id)["pgid"]))
        assert any(f"tcp://127.0.0.1:{port}" in line for line in lines), lines
        assert not any(scheduler_address in line for line in lines), "the worker dials the tunnel, not the scheduler"
        with Client(scheduler_address) as client:
            assert client.submit(pow, 3, 3).result(60) == 27
        leftovers = Path(provider.links["a"].expand(provider.records)) / f"{unit.unit_id}.env"
        assert not leftovers.exists(), "the secret's file is read and removed at launch"
        provider.terminate([unit.unit_id])
    finally:
        stop(scheduler)


def test_auto_capabilities_share_the_smallest_hosts_cpus_and_memory_among_its_slots(
    ssh_factory: ProviderMaker,
) -> None:
    hosts = {
        "a": {"group": "conformance", "capabilities": "auto", "max_units": 2},
        "b": {"group": "conformance", "capabilities": "cpu=1,memory=1e9", "max_units": 1},
        "c": {"group": "slow", "capabilities": "auto", "max_units": 2},
    }
    provider = ssh_factory(f"caps{secrets.token_hex(3)}", hosts)
    configured = (WorkerGroup("conformance", "linux", 1, 0, 3), WorkerGroup("slow", "cpu=1", 2, 0, 2))
    sized = {g.name: parse_capabilities(g.capabilities) for g in provider.groups(configured)}
    cpus = len(os.sched_getaffinity(0))
    assert sized["conformance"].as_dict()["cpu"] == min(cpus / 2, 1.0) and "linux" in sized["conformance"].labels
    assert sized["conformance"].as_dict()["memory"] <= 1e9
    assert sized["slow"].as_dict()["cpu"] == 1.0, "configured quantities win"
    assert sized["slow"].as_dict()["memory"] > 0
    with pytest.raises(ConfigurationError, match="group 'nowhere' has no host"):
        provider.groups((*configured, WorkerGroup("nowhere", "cpu=1", 1, 0, 1)))
