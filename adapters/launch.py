"""One way to launch a worker: a frozen value per unit that every provider renders (DESIGN §4).

``WorkerLaunch`` says everything a started worker needs: the command (``python -m scaler.worker.main``
with the address *workers* dial, capabilities, unit id and the unit's tags), its environment, and its
credentials. The local provider and ``LocalCluster`` render it as processes
(``scaler.adapters.local.render``); SSH renders it as a remote command, EC2 as user data. Keys and
secrets are never part of the argv: ``Credentials`` says which ones the worker needs and offers two
deliveries, an environment for a process on this host, or files (0600) for the provider's channel to
place on another host plus the environment that points at them. A loopback scheduler's secret that
this process only read from the user's published file is not handed over at all: a worker on this
host reads the same file, and so follows a restarted scheduler's new secret.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from scaler.adapters.identity import Identity, tag_arguments
from scaler.adapters.provider import WorkerGroup

from scaler.utility.security import SECRET_ENV, find_secret, handed_secret, secret_env

CURVE_KEYS_ENV = "SCALER_CURVE_KEYS"
CURVE_CLIENT_FILES = ("client.key_secret", "server.key")  # what a worker needs from a keys directory


class CredentialKind(enum.Enum):
    NONE = "none"  # the scheduler takes unauthenticated peers (``--insecure``)
    CLUSTER_SECRET = "cluster-secret"  # a loopback scheduler's per-cluster secret: never leaves this host
    CURVE_KEYS = "curve-keys"  # a CURVE keys directory made by scaler_keygen


@dataclass(frozen=True)
class Credentials:
    secret: bytes | None = field(default=None, repr=False)
    secret_address: str = ""  # the scheduler the secret is for
    curve_keys: Path | None = None
    # The scheduler's secret is in this user's published file: a worker on this host reads it there
    # itself, and so also finds the new one a restarted scheduler publishes; nothing is handed over.
    published: bool = False

    @property
    def kind(self) -> CredentialKind:
        if self.curve_keys is not None:
            return CredentialKind.CURVE_KEYS
        return CredentialKind.CLUSTER_SECRET if self.secret or self.published else CredentialKind.NONE

    def local_environment(self) -> dict[str, str]:
        """Delivery to a process on this host: its environment (never its command line)."""
        if self.curve_keys is not None:
            return {CURVE_KEYS_ENV: str(self.curve_keys)}
        if self.secret:
            return secret_env(self.secret_address, self.secret)
        return {}

    def remote_files(self) -> dict[str, bytes]:
        """Delivery to another host: the files a provider's channel places there (0600, in a 0700
        directory), by name. The cluster secret is loopback-only, so it has none."""
        if self.curve_keys is None:
            return {}
        return {name: (self.curve_keys / name).read_bytes() for name in CURVE_CLIENT_FILES}

    def remote_environment(self, directory: str) -> dict[str, str]:
        """The environment that points a remote worker at the files of ``remote_files`` placed in ``directory``."""
        return {CURVE_KEYS_ENV: directory} if self.curve_keys is not None else {}


@dataclass(frozen=True)
class WorkerLaunch:
    scheduler: str  # the address workers dial
    capabilities: str
    unit_id: str = ""
    tags: Mapping[str, str] = field(default_factory=dict)
    worker_args: tuple[str, ...] = ()
    environment: Mapping[str, str] = field(default_factory=dict)  # never a credential: see ``credentials``
    credentials: Credentials = Credentials()
    workers: int = 1

    def __post_init__(self) -> None:
        if SECRET_ENV in self.environment or CURVE_KEYS_ENV in self.environment:
            raise ValueError("credentials go in WorkerLaunch.credentials, not in its environment")

    def argv(self, index: int = 0, python: str = "python3") -> list[str]:
        """The command of worker ``index`` of the unit: no credential is ever part of it."""
        argv = [python, "-m", "scaler.worker.main", self.scheduler, "--capabilities", self.capabilities]
        if self.unit_id:
            argv += ["--unit-id", self.unit_id, "--name", f"{self.unit_id}/{index}"]
        return [*argv, *tag_arguments(dict(self.tags)), *self.worker_args]


@dataclass(frozen=True)
class LaunchBuilder:
    """Makes the ``WorkerLaunch`` of each unit of one adapter; credentials are looked up per launch, so
    units launched after a scheduler restart get its new secret."""

    identity: Identity
    scheduler: str  # the address workers dial (``worker_scheduler_address``, default the adapter's)
    curve_keys: Path | None = None
    environment: Mapping[str, str] = field(default_factory=dict)

    def credentials(self) -> Credentials:
        if self.curve_keys is not None:
            return Credentials(curve_keys=self.curve_keys)
        handed = handed_secret(self.scheduler)
        if handed:
            return Credentials(handed, self.scheduler)
        return Credentials(published=True) if find_secret(self.scheduler) else Credentials()

    def build(
        self, group: WorkerGroup, unit_id: str, request_id: str, worker_args: tuple[str, ...] = ()
    ) -> WorkerLaunch:
        return WorkerLaunch(
            scheduler=self.scheduler,
            capabilities=group.capabilities,
            unit_id=unit_id,
            tags=self.identity.tags(group.name, unit_id, request_id),
            worker_args=worker_args,
            environment=dict(self.environment),
            credentials=self.credentials(),
            workers=group.workers_per_unit,
        )
