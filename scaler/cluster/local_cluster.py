"""``LocalCluster``: a scheduler and workers on this machine, for scripts, notebooks and tests.

Every process starts as a fresh interpreter (``python -m ...``), never by ``multiprocessing``
from the user's process, so a script without an ``if __name__ == "__main__":`` guard is not
re-run. The processes die with the process that started them, and ``shutdown`` (also at exit)
stops them within about a second and removes any shared-memory segments of its scheduler, even
one that was killed before it could clean up. It stops the workers before the scheduler, and at
exit the clients still open are closed first, so every peer leaves with a goodbye and a normal
end logs no warning.
"""

from __future__ import annotations

import atexit
import os
import select
import subprocess
import sys
import time
import weakref
from dataclasses import dataclass, field
from pathlib import Path

from scaler.adapters.launch import CURVE_KEYS_ENV, Credentials, WorkerLaunch
from scaler.adapters.local.render import start_worker
from scaler.utility import shm
from scaler.utility.capabilities import canonical
from scaler.utility.net import free_port, is_loopback
from scaler.utility.security import (
    SECRET_ADDRESS_ENV,
    SECRET_ENV,
    CurveKeys,
    check_bind,
    forget_secret,
    new_secret,
    remember_secret,
    secret_env,
)

_live: weakref.WeakSet[LocalCluster] = weakref.WeakSet()
_CREDENTIAL_ENV = frozenset({SECRET_ENV, SECRET_ADDRESS_ENV, CURVE_KEYS_ENV})


@dataclass(frozen=True)
class LocalClusterConfig:
    n_workers: int | None = None
    capabilities: str | None = None
    host: str = "127.0.0.1"
    port: int = 0
    log_level: str = "WARNING"
    scheduler_args: tuple[str, ...] = ()
    worker_args: tuple[str, ...] = ()
    start_timeout: float = 30.0
    extra_env: dict[str, str] = field(default_factory=dict)
    curve_keys: str | None = None  # directory made by scaler_keygen: the scheduler requires CURVE
    insecure: bool = False  # allow a non-loopback ``host`` without CURVE keys


class LocalCluster:
    def __init__(
        self, n_workers: int | None = None, capabilities: str | None = None, config: LocalClusterConfig | None = None
    ) -> None:
        base = config or LocalClusterConfig()
        self.config = base
        self.n_workers = n_workers if n_workers is not None else (base.n_workers or os.cpu_count() or 1)
        self.capabilities = canonical(capabilities or base.capabilities or "cpu=1")
        self.scheduler: subprocess.Popen[bytes] | None = None
        self.workers: list[subprocess.Popen[bytes]] = []
        self.address = ""  # what clients on this host dial (loopback when bound to a wildcard)
        self.bind_address = ""  # what the scheduler binds
        self._secret: bytes | None = None
        # What this cluster adds to the environment of its processes (credentials apart: see worker_launch).
        self._added = {"SCALER_LOG_LEVEL": base.log_level, "PYTHONPATH": os.pathsep.join(_user_paths())}
        self._added.update({k: v for k, v in base.extra_env.items() if k not in _CREDENTIAL_ENV})
        self._env = dict(os.environ, SCALER_PARENT_PID=str(os.getpid()), **self._added)
        if base.curve_keys:
            # Workers, and clients made inside tasks, read the keys from here.
            self._env["SCALER_CURVE_KEYS"] = os.path.abspath(base.curve_keys)
        elif is_loopback(base.host):
            # The scheduler requires this secret; its workers and in-task clients get it here, never in argv.
            self._secret = new_secret()
        self._env.update(base.extra_env)
        self._start()
        _live.add(self)

    def _start(self) -> None:
        keys = CurveKeys(Path(self.config.curve_keys)) if self.config.curve_keys else None
        check_bind(f"tcp://{self.config.host}:{self.config.port}", keys, self.config.insecure)  # refused once, here
        for attempt in range(5):
            host = self.config.host
            port = self.config.port or free_port(host)
            self.bind_address = f"tcp://{host}:{port}"
            self.address = f"tcp://{_dial_host(host)}:{port}"
            security: list[str] = []
            if self.config.curve_keys:
                security += ["--curve-keys", os.path.abspath(self.config.curve_keys)]
            if self.config.insecure:
                security.append("--insecure")
            if self._secret is not None:
                self._env.update(secret_env(self.bind_address, self._secret))
            argv = ["scaler.scheduler.main", self.bind_address, *security, *self.config.scheduler_args]
            self.scheduler = self._spawn(argv, stdout=subprocess.PIPE)
            self.workers = [self.add_worker() for _ in range(self.n_workers)]
            if self._wait_scheduler():
                if self._secret is not None:
                    remember_secret(self.bind_address, self._secret)
                return
            self.shutdown()
            if self.config.port or attempt == 4:
                break
        raise RuntimeError(f"the local scheduler could not start on {self.config.host} (see its stderr above)")

    def _spawn(self, argv: list[str], stdout: int | None = None) -> subprocess.Popen[bytes]:
        return subprocess.Popen([sys.executable, "-m", *argv], env=self._env, stdin=subprocess.DEVNULL, stdout=stdout)

    def _wait_scheduler(self) -> bool:
        process = self.scheduler
        if process is None or process.stdout is None:
            return False
        deadline = time.monotonic() + self.config.start_timeout
        while time.monotonic() < deadline:
            ready, _, _ = select.select([process.stdout], [], [], 0.05)
            if ready:
                line = process.stdout.readline().decode(errors="replace")
                if line.startswith("SCALER_ADDRESS"):
                    return True
                if not line:
                    return False
            elif process.poll() is not None:
                return False
        return False

    def add_worker(self, capabilities: str | None = None) -> subprocess.Popen[bytes]:
        """Start one more worker process (the returned handle can be killed to simulate a failure)."""
        process = start_worker(self.worker_launch(capabilities))
        if process not in self.workers:
            self.workers.append(process)
        return process

    def worker_launch(self, capabilities: str | None = None) -> WorkerLaunch:
        """The launch value of this cluster's workers: rendered by the same local renderer as an adapter's."""
        if self.config.curve_keys:
            credentials = Credentials(curve_keys=Path(os.path.abspath(self.config.curve_keys)))
        elif self._secret is not None:
            credentials = Credentials(self._secret, self.bind_address)
        else:
            credentials = Credentials()
        return WorkerLaunch(
            scheduler=self.address,
            capabilities=canonical(capabilities) if capabilities else self.capabilities,
            worker_args=self.config.worker_args,
            environment=self._added,
            credentials=credentials,
        )

    def shutdown(self) -> None:
        """Stop the workers, then the scheduler: each worker says goodbye to a scheduler that
        still listens (a worker that vanishes is a warning there; one that leaves is not)."""
        _stop(self.workers, 1.5)
        _stop([self.scheduler] if self.scheduler is not None else [], 1.0)
        if self.scheduler is not None:
            if self.scheduler.stdout is not None:
                self.scheduler.stdout.close()
            shm.remove_prefix(f"scaler-{self.scheduler.pid}-")
        if self._secret is not None:
            forget_secret(self.bind_address, self._secret)
        self.workers = []
        self.scheduler = None

    close = shutdown

    def __enter__(self) -> LocalCluster:
        return self

    def __exit__(self, *_: object) -> None:
        self.shutdown()

    def __repr__(self) -> str:
        return f"<LocalCluster {self.address} workers={self.n_workers} capabilities={self.capabilities}>"


def _stop(processes: list[subprocess.Popen[bytes]], grace: float) -> None:
    """SIGTERM ``processes``, then SIGKILL those still running after ``grace`` seconds."""
    for process in processes:
        if process.poll() is None:
            try:
                process.terminate()
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + grace
    for process in processes:
        try:
            process.wait(max(0.01, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(1)


def _dial_host(host: str) -> str:
    """Where a process on this host reaches a scheduler bound to ``host`` (a wildcard: loopback)."""
    return "127.0.0.1" if host == "0.0.0.0" else host


def _user_paths() -> list[str]:
    """The user's script directory and working directory first, so its own modules import in tasks."""
    paths = [os.path.abspath(sys.path[0]) if sys.path and sys.path[0] else os.getcwd(), os.getcwd()]
    existing = os.environ.get("PYTHONPATH")
    if existing:
        paths.extend(existing.split(os.pathsep))
    return list(dict.fromkeys(p for p in paths if p))


@atexit.register
def _shutdown_all() -> None:
    clients = sys.modules.get("scaler.client.client")
    if clients is not None and _live:
        clients.close_all_clients()  # before their schedulers go, whichever module was imported first
    for cluster in list(_live):
        cluster.shutdown()
