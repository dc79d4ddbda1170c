"""The provider conformance suite, run for the local provider and for the fake provider."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from scaler.adapters.fake.provider import FakeProvider
from scaler.adapters.local.provider import LocalProvider
from scaler.adapters.provider import Provider
from scaler.adapters.testing import ProviderConformance, RunnerConformance

from scaler.utility.net import free_port


@pytest.fixture
def scheduler_address() -> str:
    return f"tcp://127.0.0.1:{free_port()}"


def local(address: str, tmp_path: Path, **kw: object) -> LocalProvider:
    return LocalProvider(address, f"conf-{tmp_path.name}", tmp_path / "state", ("--death-timeout", "20"), **kw)  # type: ignore[arg-type]


class TestLocalProvider(ProviderConformance, RunnerConformance):
    @pytest.fixture
    def provider(self, scheduler_address: str, tmp_path: Path) -> Iterator[Provider]:
        made = local(scheduler_address, tmp_path)
        yield made
        made._terminate([u.unit_id for u in made._list()])

    @pytest.fixture
    def broken_provider(self, scheduler_address: str, tmp_path: Path) -> Provider:
        return local(scheduler_address, tmp_path, python="/nonexistent/python")


class TestFakeProvider(ProviderConformance, RunnerConformance):
    @pytest.fixture
    def provider(self, scheduler_address: str, tmp_path: Path) -> Iterator[Provider]:
        inner = local(scheduler_address, tmp_path)
        yield FakeProvider(inner, boot_seconds=0.3)
        inner._terminate([u.unit_id for u in inner._list()])

    @pytest.fixture
    def broken_provider(self, scheduler_address: str, tmp_path: Path) -> Provider:
        return FakeProvider(local(scheduler_address, tmp_path), fail={"conformance": ("capacity", 5)})
