"""The SSH provider through real OpenSSH servers on loopback addresses standing for hosts.

Both conformance suites run unchanged on ``SshProvider``: units start over SSH (paramiko) as process
groups recorded on the host, their workers dial back to a real scheduler and run tasks. Then what is
SSH's own: an unknown host key refused, a partition (one sshd stopped and its workers frozen: the
units are listed failed, the tasks rerun on another host, and the leftovers are reaped when it
returns), CURVE keys sent over SFTP and never on a command line, and the tunnel.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from scaler.adapters.identity import Identity
from scaler.adapters.launch import LaunchBuilder
from scaler.adapters.provider import SyncProvider
from scaler.adapters.spec import ProviderContext
from scaler.adapters.ssh.provider import SshProvider
from scaler.adapters.ssh.spec import SshHost, SshOptions
from scaler.adapters.testing import ProviderConformance, RunnerConformance

from scaler.utility.net import free_port
from tests.sshd_harness import SshFarm, make_farm

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


def group_pids(pgid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.getpgid(int(entry)) == pgid:
                    found.append(int(entry))
            except ProcessLookupError:
                pass
    return found


def freeze(pgid: int, frozen: bool) -> None:
    os.killpg(pgid, signal.SIGSTOP if frozen else signal.SIGCONT)
