"""The SSH provider under hard hosts and concurrency, against real OpenSSH servers (``tests.sshd_harness``).

The units here run a stand-in "python" (a shell script on the host): ``-c`` (the host-side script)
runs the real interpreter, anything else (a worker) is a ``sleep`` that ignores SIGTERM, like a worker
busy finishing a task. Everything is a real process; nothing of ours is mocked.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paramiko
import psutil
import pytest
from scaler.adapters.identity import Identity
from scaler.adapters.launch import LaunchBuilder
from scaler.adapters.provider import UnitState, WorkerGroup
from scaler.adapters.spec import ProviderContext
from scaler.adapters.ssh.provider import SshProvider
from scaler.adapters.ssh.spec import SshHost, SshOptions

from tests.conftest import wait_until
from tests.sshd_harness import SshFarm, make_farm

GROUP = WorkerGroup("g", "cpu=1", workers_per_unit=1, min_units=0, max_units=8)


@pytest.fixture(scope="module")
def farm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshFarm]:
    farm = make_farm(tmp_path_factory.mktemp("ssh-faults"))
    for name in ("a", "b"):
        farm.add(name)
    try:
        yield farm
    finally:
        farm.close()


@pytest.fixture
def stubborn_python(tmp_path: Path) -> str:
    """A host "python": the host-side script runs for real; a worker is a sleep that ignores SIGTERM."""
    path = tmp_path / "python"
    path.write_text(
        f'#!/bin/sh\nif [ "$1" = "-c" ]; then exec {sys.executable} "$@"; fi\ntrap \'\' TERM\nexec sleep 300\n'
    )
    path.chmod(0o755)
    return str(path)


def make(
    farm: SshFarm,
    tmp_path: Path,
    hosts: dict[str, dict[str, Any]],
    python: str,
    cluster: str = "",
    **options: Any,
) -> SshProvider:
    identity = Identity(cluster or f"rev{secrets.token_hex(3)}", "ssh")
    address = "tcp://127.0.0.1:1"
    context = ProviderContext(identity, tmp_path / "state", address, LaunchBuilder(identity, address))
    inventory = {}
    for name, values in hosts.items():
        values = dict(values)
        address_, port = values.pop("at", None) or (farm.hosts[name].address, farm.hosts[name].port)
        values.setdefault("python", python)
        inventory[name] = SshHost(address=address_, port=port, **values)
    settings: dict[str, Any] = {
        "hosts": inventory,
        "key_file": str(farm.user_key),
        "known_hosts": str(farm.known_hosts),
        "state_dir": str(tmp_path / "remote"),
        "terminate_grace": 1.0,
        "retry_unreachable": 1.0,
        "connect_timeout": 2.0,
        **options,
    }
    return SshProvider(context, SshOptions(**settings))


def pgids_of(provider: SshProvider) -> list[int]:
    records = Path(provider.links[next(iter(provider.hosts))].expand(provider.records))
    return [int(json.loads(p.read_text())["pgid"]) for p in records.glob("*.json")]


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def kill_all(pgids: list[int]) -> None:
    for pgid in pgids:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_concurrent_launches_never_put_more_units_on_a_host_than_its_slots(
    farm: SshFarm, tmp_path: Path, stubborn_python: str
) -> None:
    """The runner launches in up to ``max_threads`` threads at once; a host's ``max_units`` must hold.
    The host answers each command after 0.3 s (a loaded host), so the launches' listings overlap."""
    slow = Path(stubborn_python).with_name("slow-python")
    slow.write_text(f'#!/bin/sh\nsleep 0.3\nexec {stubborn_python} "$@"\n')
    slow.chmod(0o755)
    provider = make(farm, tmp_path, {"a": {"group": "g", "max_units": 1}}, str(slow))
    outcomes: list[Any] = []
    barrier = threading.Barrier(4)

    def one(index: int) -> None:
        barrier.wait()
        try:
            outcomes.append(provider.launch(GROUP, 1, f"req-{index}"))
        except Exception as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(4)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        running = [u for u in provider.list_units() if u.state is UnitState.RUNNING]
        assert len(running) <= 1, f"host a has 1 slot but runs {len(running)} units: {outcomes}"
    finally:
        kill_all(pgids_of(provider))


def test_terminating_a_full_host_of_slow_to_stop_units_fits_in_the_command_timeout(
    farm: SshFarm, tmp_path: Path, stubborn_python: str
) -> None:
    """Defaults: grace 10 s, command_timeout 60 s; a host with 8 slots needs 80 s, since the host side
    waits out each unit's grace one after the other. Scaled down here: grace 1 s, timeout 2.5 s, 4 units."""
    provider = make(
        farm,
        tmp_path,
        {"a": {"group": "g", "max_units": 4}},
        stubborn_python,
        terminate_grace=1.0,
        command_timeout=2.5,
    )
    units = provider.launch(GROUP, 4, "r1")
    pgids = pgids_of(provider)
    try:
        provider.terminate([u.unit_id for u in units])  # raises HostDown: TimeoutError after 2.5 s
        assert not [p for p in pgids if group_alive(p)]
    finally:
        kill_all(pgids)


def test_one_hosts_broken_interpreter_does_not_hide_every_other_hosts_units(
    farm: SshFarm, tmp_path: Path, stubborn_python: str
) -> None:
    """list_units is the ground truth: host b (another group, its python missing) must count as down,
    not make the whole listing fail, so that host a's running unit is still listed."""
    hosts = {"a": {"group": "g"}, "b": {"group": "other", "python": "/nonexistent/python3"}}
    provider = make(farm, tmp_path, hosts, stubborn_python)
    (unit,) = provider.launch(GROUP, 1, "r1")
    pgids = pgids_of(provider)
    try:
        listed = provider.list_units()  # raises RemoteCommandError (host b exited 127)
        assert unit.unit_id in {u.unit_id for u in listed}
    finally:
        kill_all(pgids)


def listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def test_a_restarted_adapter_gives_the_units_it_lists_on_a_tunnel_host_their_tunnel_back(
    farm: SshFarm, tmp_path: Path, stubborn_python: str
) -> None:
    """The forward lives as long as the adapter's session. After a restart, the units still running on
    a ``tunnel`` host are listed (and adopted) but their only way to the scheduler is never asked for
    again until some new launch lands on that host: list_units calls ``ensure`` only for tunnels that
    this process already made."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    hosts = {"a": {"group": "g", "tunnel": True, "tunnel_port": port}}
    cluster = f"rev{secrets.token_hex(3)}"
    first = make(farm, tmp_path, hosts, stubborn_python, cluster)
    (unit,) = first.launch(GROUP, 1, "r1")
    pgids = pgids_of(first)
    try:
        assert listening(port)
        first.links["a"].close()  # the adapter process ended: its session and the forward with it
        wait_until(lambda: not listening(port), timeout=10)
        second = make(farm, tmp_path, hosts, stubborn_python, cluster)
        listed = second.list_units()
        assert [u.unit_id for u in listed if u.state is UnitState.RUNNING] == [unit.unit_id]
        assert listening(port), "the listed unit's workers have no tunnel to the scheduler"
    finally:
        kill_all(pgids)


def test_a_slow_terminate_does_not_hold_up_list_units(farm: SshFarm, tmp_path: Path, stubborn_python: str) -> None:
    """The runner calls in up to 4 threads, but every host call goes through one pool sized by the number of
    hosts: a scale-down waiting out its grace on every host leaves no thread for list_units (or a launch),
    which then waits the whole grace (with the defaults, up to 60 s: the runner's call_timeout)."""
    hosts = {"a": {"group": "g"}, "b": {"group": "g"}}
    provider = make(farm, tmp_path, hosts, stubborn_python, terminate_grace=4.0)
    units = provider.launch(GROUP, 2, "r1")
    pgids = pgids_of(provider)
    took: list[float] = []
    try:
        thread = threading.Thread(target=provider.terminate, args=([u.unit_id for u in units],))
        thread.start()
        time.sleep(0.5)
        start = time.monotonic()
        provider.list_units()
        took.append(time.monotonic() - start)
        thread.join(20)
        assert took[0] < 2.0, f"list_units waited {took[0]:.1f}s behind a terminate's grace"
    finally:
        kill_all(pgids)


def test_recycling_an_old_session_does_not_cut_a_call_in_flight_on_it(
    farm: SshFarm, tmp_path: Path, stubborn_python: str
) -> None:
    """``max_connection_age`` passed while a terminate on host a waits out its grace: a concurrent
    list_units dials a again and closes the session under the terminate, which fails (rc -1)."""
    hosts = {"a": {"group": "g"}, "b": {"group": "other"}}
    provider = make(farm, tmp_path, hosts, stubborn_python, terminate_grace=3.0, max_connection_age=1.0)
    (unit,) = provider.launch(GROUP, 1, "r1")
    pgids = pgids_of(provider)
    failure: list[BaseException] = []

    def end() -> None:
        try:
            provider.terminate([unit.unit_id])
        except BaseException as exc:
            failure.append(exc)

    try:
        thread = threading.Thread(target=end)
        thread.start()
        time.sleep(1.5)  # the session is now older than max_connection_age; terminate is in its grace
        provider.list_units()
        thread.join(20)
        assert not failure, f"terminate failed because another call recycled its session: {failure[0]!r}"
    finally:
        kill_all(pgids)


class _HungExec(paramiko.ServerInterface):
    """An SSH server that logs the adapter in and opens its channels, then never answers a command
    (a host whose sshd is wedged: out of memory, a stuck login shell, a hung NFS home)."""

    def get_allowed_auths(self, username: str) -> str:
        return "publickey"

    def check_auth_publickey(self, username: str, key: Any) -> int:
        return paramiko.AUTH_SUCCESSFUL

    def check_channel_request(self, kind: str, chanid: int) -> int:
        return paramiko.OPEN_SUCCEEDED

    def check_channel_exec_request(self, channel: Any, command: bytes) -> bool:
        time.sleep(3600)
        return False


def test_a_host_that_never_answers_a_command_is_given_up_within_command_timeout(
    farm: SshFarm, tmp_path: Path, stubborn_python: str
) -> None:
    key = paramiko.Ed25519Key.from_private_key_file(str(farm.root / "a" / "host_key"))
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    port = listener.getsockname()[1]
    served: list[socket.socket] = []

    def serve() -> None:
        with contextlib.suppress(OSError):
            while True:
                connection, _ = listener.accept()
                served.append(connection)
                transport = paramiko.Transport(connection)
                transport.add_server_key(key)
                transport.start_server(server=_HungExec())

    threading.Thread(target=serve, daemon=True).start()
    known = tmp_path / "known_hosts"
    known.write_text(f"[127.0.0.1]:{port} ssh-ed25519 {farm.hosts['a'].host_key}\n")
    hosts = {"wedged": {"group": "g", "at": ("127.0.0.1", port)}}
    provider = make(
        farm, tmp_path, hosts, stubborn_python, known_hosts=str(known), connect_timeout=1.0, command_timeout=2.0
    )
    took: list[float] = []

    def listing() -> None:
        start = time.monotonic()
        provider.list_units()
        took.append(time.monotonic() - start)

    thread = threading.Thread(target=listing, daemon=True)
    thread.start()
    thread.join(12)
    listener.close()
    for connection in served:  # frees the provider's blocked thread, so that this process can exit
        with contextlib.suppress(OSError):
            connection.shutdown(socket.SHUT_RDWR)
    assert took, "list_units still blocked after 12 s (connect_timeout 1 s, command_timeout 2 s): exec_command waits"


def test_terminate_ends_processes_a_unit_started_in_a_session_of_their_own(
    farm: SshFarm, tmp_path: Path, stubborn_python: str
) -> None:
    """A worker's task that daemonises a helper (``setsid``, ``start_new_session=True``) leaves the unit's
    process group: terminate signals the group only, so the helper outlives its unit forever."""
    marker = f"scaler-faults-{secrets.token_hex(4)}"
    python = tmp_path / "escaping-python"
    python.write_text(
        "#!/bin/sh\n"
        f'if [ "$1" = "-c" ]; then exec {sys.executable} "$@"; fi\n'
        f"setsid sh -c 'sleep 300; : {marker}' </dev/null >/dev/null 2>&1 &\n"
        "exec sleep 300\n"
    )
    python.chmod(0o755)
    provider = make(farm, tmp_path, {"a": {"group": "g"}}, str(python))
    (unit,) = provider.launch(GROUP, 1, "r1")

    def escaped() -> list[psutil.Process]:
        found = []
        for process in psutil.process_iter(["cmdline"]):
            if marker in " ".join(process.info["cmdline"] or []):
                found.append(process)
        return found

    try:
        wait_until(escaped, timeout=10)
        provider.terminate([unit.unit_id])
        assert not provider.list_units()
        assert not escaped(), "a process the unit started outlived its terminate"
    finally:
        for process in escaped():
            with contextlib.suppress(psutil.NoSuchProcess):
                for child in [*process.children(recursive=True), process]:
                    child.kill()
