"""The third-party provider the README shows (examples/provider/nice_provider.py) works as it says.

It passes the conformance suites every provider runs, and, found through its entry point alone (no
line of core names it), ``scaler_cluster --config`` runs it with its typed options: workers dial
back, run tasks at the niceness asked for, and a misspelt option is refused by key path.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest
from scaler.adapters.identity import TAG_ADAPTER, Identity, tags_from_arguments
from scaler.adapters.launch import LaunchBuilder
from scaler.adapters.provider import SyncProvider, Unit, WorkerGroup
from scaler.adapters.spec import ProviderContext
from scaler.adapters.testing import ProviderConformance, RunnerConformance

from scaler import Client
from scaler.utility.net import free_port
from tests.conftest import wait_until

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "provider"
sys.path.insert(0, str(EXAMPLE))
from nice_provider import NiceOptions, NiceProvider  # noqa: E402


class RefusedByTheBackend(NiceProvider):
    """The backend (the OS) refuses every launch, as for a user without the right."""

    def launch(self, group: WorkerGroup, count: int, request_id: str) -> list[Unit]:
        raise psutil.AccessDenied(pid=1, msg="not permitted (test)")


@pytest.fixture
def scheduler_address() -> str:
    return f"tcp://127.0.0.1:{free_port()}"


@pytest.fixture
def made() -> Iterator[list[NiceProvider]]:
    providers: list[NiceProvider] = []
    yield providers
    for provider in providers:
        provider.terminate([u.unit_id for u in provider.list_units()])


class TestNiceProvider(ProviderConformance, RunnerConformance):
    @pytest.fixture
    def provider_factory(
        self, scheduler_address: str, tmp_path: Path, made: list[NiceProvider]
    ) -> Callable[[str], SyncProvider]:
        def make(cluster_id: str, kind: type[NiceProvider] = NiceProvider) -> NiceProvider:
            identity = Identity(cluster_id, "nice")
            context = ProviderContext(identity, tmp_path, scheduler_address, LaunchBuilder(identity, scheduler_address))
            provider = kind(context, NiceOptions())
            made.append(provider)
            return provider

        return make

    @pytest.fixture
    def provider(self, provider_factory: Callable[[str], SyncProvider], cluster_id: str) -> SyncProvider:
        return provider_factory(cluster_id)

    @pytest.fixture
    def broken_provider(self, provider_factory: Callable[..., SyncProvider], cluster_id: str) -> SyncProvider:
        return provider_factory(cluster_id, RefusedByTheBackend)


def installed(tmp_path: Path) -> dict[str, str]:
    """An environment in which the example is installed as a package with its entry point."""
    dist = tmp_path / "site" / "nice_provider-1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: nice-provider\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[scaler.adapters]\nnice = nice_provider:SPEC\n")
    path = os.pathsep.join([str(tmp_path / "site"), str(EXAMPLE), os.environ.get("PYTHONPATH", "")])
    return dict(os.environ, PYTHONPATH=path, SCALER_LOG_LEVEL="WARNING")


def deployment(tmp_path: Path, port: int, options: str) -> Path:
    config = tmp_path / "nice.toml"
    config.write_text(f"""
cluster_id = "nice{port}"
[scheduler]
address = "tcp://127.0.0.1:{port}"
[[adapter]]
provider = "nice"
state_dir = "{tmp_path / "state"}"
options = {{ {options} }}
[[adapter.group]]
name = "cpu"
min_units = 1
max_units = 1
""")
    return config


def test_scaler_cluster_runs_the_example_found_by_its_entry_point(tmp_path: Path) -> None:
    port = free_port()
    config = deployment(tmp_path, port, "niceness = 7")
    argv = [sys.executable, "-m", "scaler.cluster.main", "--config", str(config)]
    cluster = subprocess.Popen(argv, env=installed(tmp_path), stdout=subprocess.PIPE, text=True)
    try:
        assert cluster.stdout is not None and "scaler cluster at" in cluster.stdout.readline()
        with Client(f"tcp://127.0.0.1:{port}") as client:
            assert client.submit(pow, 3, 4).result(90) == 81
        workers = [
            p for p in psutil.process_iter(["cmdline"]) if tags_from_arguments(p.info["cmdline"] or []).get(TAG_ADAPTER)
        ]
        nice = {p.nice() for p in workers if f"nice{port}" in " ".join(p.info["cmdline"])}
        assert nice == {7}, "its workers run at the niceness the options ask"
    finally:
        cluster.terminate()
        cluster.wait(30)
    wait_until(lambda: not [p for p in psutil.process_iter(["cmdline"]) if f"nice{port}" in str(p.info["cmdline"])])


def test_a_misspelt_option_of_the_example_is_refused_by_key_path(tmp_path: Path) -> None:
    config = deployment(tmp_path, free_port(), "nicenes = 7")
    argv = [sys.executable, "-m", "scaler.cluster.main", "--config", str(config)]
    result = subprocess.run(argv, env=installed(tmp_path), capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert f"{config}: $.adapter[0].options.nicenes: unknown field" in result.stderr, result.stderr


def test_the_readme_shows_the_example_as_it_is() -> None:
    readme = (EXAMPLE.parent.parent / "README.md").read_text()
    assert f"```python\n{(EXAMPLE / 'nice_provider.py').read_text()}```" in readme
    assert len((EXAMPLE / "nice_provider.py").read_text().splitlines()) < 60
