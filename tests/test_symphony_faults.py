"""The Symphony provider under races with other closers, against the SYMREST emulator (``tests.symphony_emulator``)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from scaler.adapters.identity import Identity
from scaler.adapters.launch import LaunchBuilder
from scaler.adapters.spec import ProviderContext
from scaler.adapters.symphony.provider import SymphonyProvider
from scaler.adapters.symphony.spec import SymphonyOptions
from scaler.adapters.testing import GROUP

from scaler.utility.net import free_port
from tests.symphony_emulator import Emulator

USERS = {"grid": "s3cret-pw"}


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    emulator = Emulator(tmp_path_factory.mktemp("symphony-faults"), USERS, 8)
    yield emulator
    emulator.close()


def make(emulator: Emulator, tmp_path: Path, cluster_id: str) -> SymphonyProvider:
    identity = Identity(cluster_id, "symphony")
    address = f"tcp://127.0.0.1:{free_port()}"
    context = ProviderContext(identity, tmp_path / "state", address, LaunchBuilder(identity, address))
    options = SymphonyOptions(
        url=emulator.url,
        ca_file=str(emulator.tls.ca_file),
        username="grid",
        password=USERS["grid"],
        python=sys.executable,
        worker_args=("--death-timeout", "5"),
    )
    return SymphonyProvider(context, options)


def test_terminate_treats_a_session_closed_meanwhile_as_ended_and_closes_the_rest(
    emulator: Emulator, tmp_path: Path
) -> None:
    """terminate lists the open sessions, then closes them one by one. A session that closed in between
    (its unit ended by a concurrent terminate, or by an administrator) answers 404 "no open session":
    terminate raises ApiException (ConfigurationError for the runner) and leaves the batch's other
    sessions open, though the unit it was asked to end is ended."""
    provider = make(emulator, tmp_path, "revsym1")
    units = provider.launch(GROUP, 2, "r1")
    try:
        # closed by someone else just before: the close is carried out, and answered 404
        emulator.fail("DELETE", "/v1/clientapi/session", 404, message="no open session '1'", commit=True)
        provider.terminate([u.unit_id for u in units])
        assert not provider.list_units(), "the batch's other session is still open"
    finally:
        emulator.faults.clear()
        provider.terminate([u.unit_id for u in provider.list_units()])
