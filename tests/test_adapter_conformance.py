"""The provider conformance suite, run for the local provider and for the fake provider."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from scaler.adapters.fake.provider import FakeProvider
from scaler.adapters.identity import Identity
from scaler.adapters.launch import LaunchBuilder
from scaler.adapters.local.provider import LocalProvider
from scaler.adapters.provider import Provider
from scaler.adapters.spec import ProviderContext
from scaler.adapters.testing import ProviderConformance, RunnerConformance

from scaler.utility.net import free_port

WORKER_ARGS = ("--death-timeout", "20")


@pytest.fixture
def scheduler_address() -> str:
    return f"tcp://127.0.0.1:{free_port()}"


def context(address: str, tmp_path: Path, cluster_id: str) -> ProviderContext:
    identity = Identity(cluster_id, "conformance")
    return ProviderContext(identity, tmp_path / "state", address, LaunchBuilder(identity, address))


@pytest.fixture
def locals_made() -> Iterator[list[LocalProvider]]:
    made: list[LocalProvider] = []
    yield made
    for local in made:
        local._terminate([u.unit_id for u in local._list()])


@pytest.fixture
def local_factory(
    scheduler_address: str, tmp_path: Path, locals_made: list[LocalProvider]
) -> Callable[..., LocalProvider]:
    def make(cluster_id: str, python: str = "") -> LocalProvider:
        local = LocalProvider(context(scheduler_address, tmp_path, cluster_id), WORKER_ARGS, python=python)
        locals_made.append(local)
        return local

    return make


class TestLocalProvider(ProviderConformance, RunnerConformance):
    @pytest.fixture
    def provider_factory(self, local_factory: Callable[..., LocalProvider]) -> Callable[[str], Provider]:
        return local_factory

    @pytest.fixture
    def provider(self, local_factory: Callable[..., LocalProvider], cluster_id: str) -> Provider:
        return local_factory(cluster_id)

    @pytest.fixture
    def broken_provider(self, local_factory: Callable[..., LocalProvider], cluster_id: str) -> Provider:
        return local_factory(cluster_id, python="/nonexistent/python")


class TestFakeProvider(ProviderConformance, RunnerConformance):
    @pytest.fixture
    def provider_factory(self, local_factory: Callable[..., LocalProvider]) -> Callable[[str], Provider]:
        return lambda cluster_id: FakeProvider(local_factory(cluster_id), boot_seconds=0.3)

    @pytest.fixture
    def provider(self, provider_factory: Callable[[str], Provider], cluster_id: str) -> Provider:
        return provider_factory(cluster_id)

    @pytest.fixture
    def broken_provider(self, local_factory: Callable[..., LocalProvider], cluster_id: str) -> Provider:
        return FakeProvider(local_factory(cluster_id), fail={"conformance": ("capacity", 5)})
