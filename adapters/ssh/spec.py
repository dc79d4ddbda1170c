"""The SSH provider's inventory and entry point, light enough to import when a config is checked.

No paramiko here: a deployment file is checked (misspelt keys refused by key path) on a machine
without the ``ssh`` extra; the provider (``scaler.adapters.ssh.provider``) is imported only when the
adapter starts, with ``pip install 'scaler[ssh]'`` as the hint if paramiko is missing.

The inventory is ``hosts``, by name. Each host belongs to one worker group and offers ``max_units``
slots; a unit is a lease on one slot. A host's settings left empty take the options' defaults
(``user``, ``key_file``, ``python``), resolved once by ``SshOptions.host``.
"""

from __future__ import annotations

import getpass
from dataclasses import dataclass
from typing import Annotated, Literal

import msgspec
from scaler.adapters.spec import Options, ProviderSpec

Positive = Annotated[float, msgspec.Meta(gt=0)]
Port = Annotated[int, msgspec.Meta(ge=0, le=65535)]


class SshHost(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    address: str  # a name or an IP address the adapter connects to
    group: str  # the worker group whose units this host runs
    port: Annotated[int, msgspec.Meta(ge=1, le=65535)] = 22
    user: str = ""  # "" = options.user
    key_file: str = ""  # "" = options.key_file
    max_units: Annotated[int, msgspec.Meta(ge=1)] = 1  # slots: units this host runs at once
    # The host's total capacity, shared by its slots: "" = the group's capabilities as configured;
    # "auto" = nproc, memory and GPUs read over SSH at first contact; or e.g. "cpu=32,memory=128e9,gpu=2".
    capabilities: str = ""
    python: str = ""  # "" = options.python; with bootstrap, the interpreter that makes the venv
    bootstrap: bool = False  # make ``venv`` and install this package's wheel there when missing or another build
    venv: str = "~/.scaler/venv"  # where bootstrap installs (its bin/python then runs the workers)
    tunnel: bool = False  # workers reach the scheduler through this adapter's SSH session (remote forward)
    tunnel_port: Port = 0  # the port the tunnel listens on, on the host's loopback; 0 = the scheduler's port


class SshOptions(Options, frozen=True, forbid_unknown_fields=True, kw_only=True):
    hosts: dict[str, SshHost] = {}
    user: str = ""  # "" = the user running the adapter
    key_file: str = ""  # a private key file; "" = the ssh-agent, then ~/.ssh/id_* keys
    known_hosts: str = "~/.ssh/known_hosts"
    unknown_hosts: Literal["refuse", "accept-new"] = "refuse"  # accept-new: trust and record a first-seen key
    python: str = "python3"  # the interpreter on the hosts that has scaler installed
    state_dir: str = "~/.scaler"  # on each host: units/<cluster>/<unit>.json records, logs and keys
    worker_args: tuple[str, ...] = ()  # added to each worker's command line
    connect_timeout: Positive = 10.0
    command_timeout: Positive = 60.0
    max_connection_age: Positive = 600.0  # a session older than this is closed and opened again
    retry_unreachable: Positive = 10.0  # seconds before an unreachable host is dialled again
    terminate_grace: Annotated[float, msgspec.Meta(ge=0)] = 10.0  # SIGTERM, then SIGKILL after this
    offline_bootstrap: bool = False  # bootstrap sends the dependencies' wheels too: hosts need no package index

    def __post_init__(self) -> None:
        if not self.hosts:
            raise ValueError("the ssh adapter needs at least one host in options.hosts")

    def host(self, name: str) -> HostSettings:
        """Host ``name`` with every default filled in."""
        h = self.hosts[name]
        return HostSettings(
            name=name,
            address=h.address,
            port=h.port,
            user=h.user or self.user or getpass.getuser(),
            key_file=h.key_file or self.key_file,
            group=h.group,
            max_units=h.max_units,
            capabilities=h.capabilities,
            python=h.python or self.python,
            bootstrap=h.bootstrap,
            venv=h.venv,
            tunnel=h.tunnel,
            tunnel_port=h.tunnel_port,
        )


@dataclass(frozen=True)
class HostSettings:
    name: str
    address: str
    port: int
    user: str
    key_file: str
    group: str
    max_units: int
    capabilities: str
    python: str
    bootstrap: bool
    venv: str
    tunnel: bool
    tunnel_port: int


SPEC = ProviderSpec(
    "ssh", SshOptions, "scaler.adapters.ssh.provider:make_provider", "pip install 'scaler[ssh]'", sized_units=True
)
