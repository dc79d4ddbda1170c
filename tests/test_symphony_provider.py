"""The Symphony provider against an emulator of SYMREST on 127.0.0.1 (TLS, a CA made here), through ibm-cloud-sdk-core.

Both conformance suites run unchanged on ``SymphonyProvider``: each session's task really starts the
service wrapper here, whose workers dial back to a real scheduler and run tasks. Then what is
Symphony's own: a token that expires mid-run (one login again, the call succeeds), renewal before
expiry, 403 (the group stops), 429 and 503 (backed off, never a second create), no free slot
(capacity, also midway through a launch), a quota refusal, a wrong CA (configuration), Basic auth with
credentials from the environment, sizing from the resource group, a session whose workers exited, and
closing a session, which stops its workers through the service (tests/test_symphony_service.py has the
service's own tests).
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from scaler.adapters.calls import ProviderCalls
from scaler.adapters.errors import (
    AuthError,
    CapacityError,
    ConfigurationError,
    PartialLaunchError,
    QuotaError,
    ThrottledError,
)
from scaler.adapters.identity import Identity
from scaler.adapters.launch import LaunchBuilder
from scaler.adapters.provider import SyncProvider, UnitState, WorkerGroup
from scaler.adapters.runner import AdapterRunner, RunnerConfig
from scaler.adapters.spec import ProviderContext
from scaler.adapters.symphony.provider import SymphonyProvider
from scaler.adapters.symphony.spec import SymphonyGroup, SymphonyOptions
from scaler.adapters.testing import GROUP, ProviderConformance, RunnerConformance

from scaler.protocol import messages as m
from scaler.utility.net import free_port
from tests.symphony_emulator import Emulator
from tests.symphony_tls import make_tls

USERS = {"grid": "s3cret-pw"}
SLOTS = 8
WORKER_ARGS = ("--death-timeout", "20")
CREATE = ("POST", "/v1/clientapi/session")
ProviderMaker = Callable[..., SymphonyProvider]


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    emulator = Emulator(tmp_path_factory.mktemp("symphony"), USERS, SLOTS)
    yield emulator
    emulator.close()


@pytest.fixture
def scheduler_address() -> str:
    return f"tcp://127.0.0.1:{free_port()}"


@pytest.fixture
def symphony_factory(emulator: Emulator, scheduler_address: str, tmp_path: Path) -> Iterator[ProviderMaker]:
    made: list[SymphonyProvider] = []

    def make(cluster_id: str, launches: LaunchBuilder | None = None, **options: Any) -> SymphonyProvider:
        identity = Identity(cluster_id, "symphony")
        context = ProviderContext(
            identity, tmp_path / "state", scheduler_address, launches or LaunchBuilder(identity, scheduler_address)
        )
        values: dict[str, Any] = {
            "url": emulator.url,
            "ca_file": str(emulator.tls.ca_file),
            "username": "grid",
            "password": USERS["grid"],
            "python": sys.executable,
            "worker_args": WORKER_ARGS,
        }
        provider = SymphonyProvider(context, SymphonyOptions(**{**values, **options}))
        made.append(provider)
        return provider

    yield make
    emulator.faults.clear()
    emulator.slots = SLOTS
    for provider in made:
        try:
            provider.terminate([u.unit_id for u in provider.list_units()])
        except Exception:
            pass  # a provider made broken on purpose (wrong password, CA): it launched nothing


class TestSymphonyProvider(ProviderConformance, RunnerConformance):
    @pytest.fixture
    def provider_factory(self, symphony_factory: ProviderMaker) -> Callable[[str], SyncProvider]:
        return symphony_factory

    @pytest.fixture
    def provider(self, symphony_factory: ProviderMaker, cluster_id: str) -> SyncProvider:
        return symphony_factory(cluster_id)

    @pytest.fixture
    def broken_provider(self, symphony_factory: ProviderMaker, cluster_id: str) -> SyncProvider:
        return symphony_factory(cluster_id, password="not-the-password")  # refused at login: the group stops


# -- faults ------------------------------------------------------------------------------------------------


def launch_through_runner_calls(provider: SymphonyProvider, request_id: str, count: int = 1) -> Any:
    """A launch as the runner makes it: in its thread pool, the backend's errors translated to ours."""

    async def body() -> Any:
        calls = ProviderCalls(provider, "symphony", timeout=30.0, max_threads=2)
        try:
            return await calls.launch(GROUP, count, request_id, late=lambda units: None)
        finally:
            calls.close()

    return asyncio.run(body())


def test_a_token_that_expires_mid_run_is_renewed_by_one_login(
    symphony_factory: ProviderMaker, emulator: Emulator
) -> None:
    provider = symphony_factory("symexp")
    units = provider.launch(GROUP, 1, "exp-1")
    logins: Any = provider.api.authenticator
    assert logins.logins == 1
    emulator.expire_tokens()  # mid-run: the server no longer knows the adapter's token
    listed = provider.list_units()
    assert {u.unit_id for u in listed} == {u.unit_id for u in units}
    assert logins.logins == 2, "one login again, then the call succeeded"
    provider.terminate([u.unit_id for u in units])


def test_the_token_is_renewed_before_it_expires(symphony_factory: ProviderMaker, emulator: Emulator) -> None:
    provider = symphony_factory("symrenew", token_lifetime=600.0, renew_before=599.5)
    provider.list_units()
    auth: Any = provider.api.authenticator
    before = emulator.calls[("GET", "/v1/auth/renew")]
    time.sleep(0.8)
    provider.list_units()
    assert (auth.logins, auth.renewals) == (1, 1)
    assert emulator.calls[("GET", "/v1/auth/renew")] == before + 1


def test_a_refused_user_stops_the_group(
    symphony_factory: ProviderMaker, emulator: Emulator, scheduler_address: str
) -> None:
    provider = symphony_factory("symforbid")
    emulator.fail(*CREATE, 403, message="user grid may not use application ScalerWorker")

    async def body() -> AdapterRunner:
        runner = AdapterRunner(provider, RunnerConfig("symphony", scheduler_address, (GROUP,), backoff_base=60.0))
        runner.apply(m.ScaleCommand("forbid-1", {GROUP.name: 1}))
        await runner.settle()
        return runner

    runner = asyncio.run(body())
    assert GROUP.name in runner.health.stopped and "403" in runner.health.stopped[GROUP.name]
    assert provider.list_units() == []


@pytest.mark.parametrize("status", [429, 503])
def test_throttling_backs_off_and_never_creates_twice(
    symphony_factory: ProviderMaker, emulator: Emulator, status: int
) -> None:
    provider = symphony_factory(f"symthrottle{status}")
    before = emulator.calls[CREATE]
    # The create is carried out, but its answer is lost behind a throttling status.
    emulator.fail(*CREATE, status, message="too many requests", commit=True)
    with pytest.raises(ThrottledError):
        launch_through_runner_calls(provider, "throttled-1")
    assert emulator.calls[CREATE] == before + 1, "the SDK never retries a create"
    (unit,) = launch_through_runner_calls(provider, "throttled-1")  # the runner's retry, after its backoff
    assert emulator.calls[CREATE] == before + 1, "the session was found by name: not created again"
    assert [u.unit_id for u in provider.list_units()] == [unit.unit_id]
    provider.terminate([unit.unit_id])


def test_no_free_slot_is_capacity_and_leaves_no_session(symphony_factory: ProviderMaker, emulator: Emulator) -> None:
    provider = symphony_factory("symslots")
    emulator.slots = 0  # every slot is taken (the fixture gives them back)
    with pytest.raises(CapacityError, match="no free slot"):
        launch_through_runner_calls(provider, "slots-1")
    assert provider.list_units() == []


def test_a_cluster_ca_that_does_not_sign_the_server_is_configuration(
    symphony_factory: ProviderMaker, tmp_path: Path
) -> None:
    other = make_tls(tmp_path / "other")
    provider = symphony_factory("symca", ca_file=str(other.ca_file))
    with pytest.raises(ConfigurationError, match="SSLError"):
        launch_through_runner_calls(provider, "ca-1")


def test_basic_auth_with_credentials_from_the_environment(
    symphony_factory: ProviderMaker, emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SYM_USER", "grid")
    monkeypatch.setenv("SYM_PASSWORD", USERS["grid"])
    logins = emulator.calls[("GET", "/v1/auth/login")]
    environment = {"username_env": "SYM_USER", "password_env": "SYM_PASSWORD"}
    provider = symphony_factory("symbasic", auth="basic", username="", password="", **environment)
    assert provider.list_units() == []
    assert emulator.calls[("GET", "/v1/auth/login")] == logins, "Basic needs no login"


def test_missing_credentials_name_the_key_and_the_variable(
    symphony_factory: ProviderMaker, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SCALER_SYMPHONY_PASSWORD", raising=False)
    provider = symphony_factory("symnocred", password="")  # built fine: credentials are read at the first call
    with pytest.raises(AuthError, match=r"options\.password or the environment variable SCALER_SYMPHONY_PASSWORD"):
        launch_through_runner_calls(provider, "nocred-1")


def test_workers_are_sized_from_the_resource_group(symphony_factory: ProviderMaker) -> None:
    groups = {"cpu": SymphonyGroup(resource_group="ComputeHosts")}
    provider = symphony_factory("symsize", groups=groups)
    configured = (WorkerGroup("cpu", "linux", 2, 0, 4), WorkerGroup("plain", "cpu=1", 1, 0, 4))
    cpu, plain = provider.groups(configured)
    # the smallest host (4 ncpus, 8192 MiB nram) shared by 2 workers, and the configured label
    assert cpu.capabilities == f"cpu=2,memory={4 * 1024 * 1024 * 1024},linux"
    assert plain.capabilities == "cpu=1"
    with pytest.raises(ConfigurationError, match=r"options\.groups name cpus: no such"):
        symphony_factory("symsize", groups={"cpus": SymphonyGroup()}).groups(configured)


def test_a_session_whose_workers_exited_is_listed_failed(symphony_factory: ProviderMaker) -> None:
    provider = symphony_factory("symexit", python="/bin/false")  # the workers exit at once
    (unit,) = provider.launch(GROUP, 1, "exit-1")
    deadline = time.monotonic() + 30
    while [u.state for u in provider.list_units()] != [UnitState.FAILED]:
        assert time.monotonic() < deadline, provider.list_units()
        time.sleep(0.1)
    provider.terminate([unit.unit_id])
    assert provider.list_units() == []


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def test_closing_a_session_stops_its_workers_through_the_service(
    symphony_factory: ProviderMaker, emulator: Emulator, scheduler_address: str
) -> None:
    provider = symphony_factory("symclose")
    (unit,) = provider.launch(GROUP, 1, "close-1")
    (session,) = [s for s in emulator.open_sessions() if s.tag == "symclose.symphony.conformance"]
    service_process = session.tasks[0].process
    assert service_process is not None
    deadline = time.monotonic() + 30
    while len([p for p in psutil.Process(service_process.pid).children() if p.is_running()]) < 1:
        assert time.monotonic() < deadline, "the service never started its worker"
        time.sleep(0.05)
    provider.terminate([unit.unit_id])
    service_process.wait(30)
    assert service_process.returncode >= 0, "the service ended on its own after its workers, not by a signal"
    # SIGTERM reached the service, which passed it on: its group is empty well before the emulator's SIGKILL.
    deadline = time.monotonic() + 9
    while group_alive(service_process.pid):
        assert time.monotonic() < deadline, "the workers outlived their closed session"
        time.sleep(0.05)


def test_a_launch_that_runs_out_of_slots_midway_keeps_what_it_got(
    symphony_factory: ProviderMaker, emulator: Emulator
) -> None:
    provider = symphony_factory("sympartial")
    emulator.slots = emulator.running() + 1  # room for one more task only
    with pytest.raises(PartialLaunchError) as info:
        launch_through_runner_calls(provider, "partial-1", count=2)
    assert len(info.value.units) == 1 and isinstance(info.value.cause, CapacityError)
    assert [u.unit_id for u in provider.list_units()] == [info.value.units[0].unit_id], "no empty session is left"


def test_a_quota_refusal_is_quota(symphony_factory: ProviderMaker, emulator: Emulator) -> None:
    provider = symphony_factory("symquota")
    emulator.fail(*CREATE, 409, message="the consumer's session quota is reached")
    with pytest.raises(QuotaError):
        launch_through_runner_calls(provider, "quota-1")
