"""Real OpenSSH servers on loopback standing for several hosts, for the SSH provider's tests.

Each "host" is an ``sshd`` of its own on an address of 127.0.0.0/8 (127.0.0.2, .3, ...) with a host
key generated at test time; one generated user key is authorised on all of them, and a
``known_hosts`` file lists their keys (or not: ``known=False`` leaves a host unknown). A host can be
stopped and started again on the same address and key (a partition). Nothing listens beyond
loopback. A session's HOME is a directory of the farm's (no ~/.bashrc of the tester runs), and its
XDG_RUNTIME_DIR points at this process's secrets directory. Without ``/usr/sbin/sshd`` the tests
skip, unless ``SCALER_REQUIRE_SSHD`` is set (CI installs openssh-server, so there they must run).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest

from scaler.utility import security

SSHD = "/usr/sbin/sshd"


def require_sshd() -> None:
    if os.path.exists(SSHD) and shutil.which("ssh-keygen"):
        return
    if os.environ.get("SCALER_REQUIRE_SSHD"):
        pytest.fail("SCALER_REQUIRE_SSHD is set but openssh-server is not installed")
    pytest.skip("openssh-server is not installed (apt-get install openssh-server; .ci/run does)")


def free_port(address: str) -> int:
    with socket.socket() as s:
        s.bind((address, 0))
        return int(s.getsockname()[1])


def keygen(path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)


@dataclass
class Host:
    name: str
    address: str
    port: int
    directory: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def host_key(self) -> str:
        return (self.directory / "host_key.pub").read_text().split()[1]

    def known_hosts_line(self) -> str:
        return f"[{self.address}]:{self.port} ssh-ed25519 {self.host_key}\n"


@dataclass
class SshFarm:
    root: Path
    hosts: dict[str, Host] = field(default_factory=dict)

    @property
    def user_key(self) -> Path:
        return self.root / "id_ed25519"

    @property
    def known_hosts(self) -> Path:
        return self.root / "known_hosts"

    def add(self, name: str, known: bool = True) -> Host:
        index = len(self.hosts) + 2
        address = f"127.0.0.{index}"
        directory = self.root / name
        directory.mkdir()
        keygen(directory / "host_key")
        host = Host(name, address, free_port(address), directory)
        config = directory / "sshd_config"
        config.write_text(
            f"ListenAddress {address}:{host.port}\n"
            f"HostKey {directory / 'host_key'}\n"
            f"PidFile {directory / 'sshd.pid'}\n"
            f"AuthorizedKeysFile {self.root / 'authorized_keys'}\n"
            "StrictModes no\nUsePAM no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
            "PermitRootLogin prohibit-password\nAllowTcpForwarding yes\nMaxSessions 64\nMaxStartups 64\n"
            "Subsystem sftp internal-sftp\nLogLevel ERROR\n"
            f"SetEnv HOME={self.root / 'home'} XDG_RUNTIME_DIR={self.root / 'runtime'}\n"
        )
        self.hosts[name] = host
        if known:
            with self.known_hosts.open("a") as f:
                f.write(host.known_hosts_line())
        self.start(name)
        return host

    def start(self, name: str) -> None:
        host = self.hosts[name]
        log = (host.directory / "sshd.log").open("ab")
        argv = [SSHD, "-D", "-e", "-f", str(host.directory / "sshd_config")]
        host.process = subprocess.Popen(argv, stdout=log, stderr=log, start_new_session=True)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if host.process.poll() is not None:
                raise RuntimeError(f"sshd for {name} exited: {(host.directory / 'sshd.log').read_text()}")
            try:
                with socket.create_connection((host.address, host.port), timeout=1):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"sshd for {name} did not listen on {host.address}:{host.port}")

    def stop(self, name: str) -> None:
        """Stop the host's sshd and every session it serves: established connections drop too."""
        host = self.hosts[name]
        if host.process is None:
            return
        try:
            sessions = psutil.Process(host.process.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            sessions = []
        for process in [*sessions, psutil.Process(host.process.pid)]:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.kill()
        host.process.wait(10)
        host.process = None

    def close(self) -> None:
        for name in self.hosts:
            self.stop(name)


def group_pids(pgid: int) -> list[int]:
    """The processes of process group ``pgid`` on this host (a unit's, on a loopback "host")."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.getpgid(int(entry)) == pgid:
                    found.append(int(entry))
            except ProcessLookupError:
                pass
    return found


def make_farm(root: Path) -> SshFarm:
    require_sshd()
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege-separation directory
    farm = SshFarm(root)
    root.mkdir(parents=True, exist_ok=True)
    keygen(farm.user_key)
    (root / "authorized_keys").write_text(Path(f"{farm.user_key}.pub").read_text())
    farm.known_hosts.write_text("")
    # Sessions get a HOME of their own, so the login shell reads no ~/.bashrc of the user running the tests
    # (on a machine with pyenv it runs `pyenv rehash`, which waits a minute on a lock a killed session left),
    # and the secrets directory this process uses (the hosts are this host, and this user).
    (root / "home").mkdir(mode=0o700)
    (root / "runtime").mkdir(mode=0o700)
    secrets = security.secret_dir()
    secrets.mkdir(parents=True, exist_ok=True, mode=0o700)
    (root / "runtime" / "scaler").symlink_to(secrets)
    return farm


@pytest.fixture
def ssh_farm(tmp_path: Path) -> Iterator[SshFarm]:
    farm = make_farm(tmp_path / "ssh")
    try:
        yield farm
    finally:
        farm.close()
