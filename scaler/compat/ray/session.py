"""``ray.init``/``ray.shutdown``: one process-wide connection to a scheduler.

With no address, ``init`` starts a ``LocalCluster`` of one worker sized like a Ray node
(``num_cpus`` default: this machine's CPUs; ``num_gpus`` default 0; ``resources``; ``memory``:
this machine's RAM in bytes), so ``num_cpus=2`` tasks on a 2-cpu cluster run one at a time as in
Ray. ``address="tcp://..."`` (or ``SCALER_ADDRESS``) connects to a running scheduler instead.
Inside a task the API connects itself to the task's scheduler, which counts as initialized.
A program that ends without ``ray.shutdown()`` gets one at exit, as in Ray: the driver's client
says goodbye first, then the local cluster stops.
"""

from __future__ import annotations

import atexit
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import psutil

from scaler.client.client import Client, ClientConfig
from scaler.cluster.local_cluster import LocalCluster, LocalClusterConfig
from scaler.compat.ray.options import capability_string, runtime_env_vars
from scaler.worker import runtime

_IGNORED_INIT_ARGS = {
    "include_dashboard",
    "dashboard_host",
    "dashboard_port",
    "object_store_memory",
    "configure_logging",
    "logging_level",
    "logging_format",
    "logging_config",
    "labels",
    "job_config",
    "_temp_dir",
    "_system_config",
    "enable_resource_isolation",
    "system_reserved_cpu",
    "system_reserved_memory",
    "_metrics_export_port",
}


@dataclass
class Session:
    client: Client
    cluster: LocalCluster | None
    namespace: str
    env_vars: dict[str, str] = field(default_factory=dict)
    log_to_driver: bool = True


class RayContext:
    """What ``ray.init`` returns: address info, usable as a context manager."""

    def __init__(self, address: str) -> None:
        self.address_info = {"address": address, "gcs_address": address}
        self.dashboard_url = None

    def __enter__(self) -> RayContext:
        return self

    def __exit__(self, *_: Any) -> None:
        shutdown()

    def disconnect(self) -> None:
        shutdown()


_session: Session | None = None
_lock = threading.RLock()


def init(
    address: str | None = None,
    *,
    num_cpus: float | None = None,
    num_gpus: float | None = None,
    resources: dict[str, float] | None = None,
    memory: int | None = None,
    namespace: str | None = None,
    runtime_env: dict[str, Any] | None = None,
    ignore_reinit_error: bool = False,
    log_to_driver: bool | None = None,
    local_mode: bool = False,
    **kwargs: Any,
) -> RayContext:
    global _session
    unknown = set(kwargs) - _IGNORED_INIT_ARGS
    if unknown:
        raise NotImplementedError(f"ray.init({', '.join(sorted(unknown))}=...) is not supported by Scaler")
    if local_mode:
        raise NotImplementedError("ray.init(local_mode=True) is not supported by Scaler")
    with _lock:
        if _session is not None:
            if ignore_reinit_error:
                return RayContext(_session.client.address)
            raise RuntimeError("Maybe you called ray.init twice by accident? Use ray.init(ignore_reinit_error=True).")
        env_vars = runtime_env_vars(runtime_env, "ray.init")
        address = _resolve_address(address)
        if address is not None and not address.startswith("tcp://"):
            raise NotImplementedError(
                f"ray.init(address={address!r}): Scaler connects to tcp://HOST:PORT scheduler addresses only"
            )
        drive = True if log_to_driver is None else log_to_driver
        cluster = None
        if address is None:
            cpus = num_cpus if num_cpus is not None else (os.cpu_count() or 1)
            quantities: dict[str, float] = {"num_cpus": cpus, "num_gpus": num_gpus or 0}
            caps = capability_string(
                {**quantities, "resources": resources or {}, "memory": memory or psutil.virtual_memory().total},
                default_cpus=0,
            )
            config = LocalClusterConfig(extra_env=env_vars)
            cluster = LocalCluster(n_workers=1, capabilities=caps, config=config)
            address = cluster.address
        client = Client(address, ClientConfig(name="ray-driver"))
        if cluster is not None:
            _wait_for_a_worker(client)
        _session = Session(client, cluster, namespace or "anonymous", env_vars, drive)
        return RayContext(address)


def _wait_for_a_worker(client: Client, timeout: float = 60.0) -> None:
    """Like Ray, return from init once the local node is up (resource queries see it at once)."""
    deadline = time.monotonic() + timeout
    while int(client.scheduler_status().status["workers"]) < 1:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the local worker did not join within {timeout:g}s")
        time.sleep(0.01)


def _resolve_address(address: str | None) -> str | None:
    from_env = os.environ.get("SCALER_ADDRESS") or os.environ.get("RAY_ADDRESS")
    if address == "local":
        return None
    if address == "auto":
        if not from_env:
            raise ConnectionError(
                "ray.init(address='auto'): set SCALER_ADDRESS to a running scheduler's tcp:// address"
            )
        return from_env
    return address or from_env or None


def shutdown() -> None:
    global _session
    with _lock:
        session, _session = _session, None
    if session is None:
        return
    session.client.close()
    if session.cluster is not None:
        session.cluster.shutdown()


atexit.register(shutdown)  # as Ray does; registered after the client's and the cluster's hooks, so it runs first


def is_initialized() -> bool:
    return _session is not None or bool(runtime.scheduler_address())


def session() -> Session:
    """The current session; starts one as Ray does on first use (auto-init)."""
    global _session
    current = _session
    if current is not None:
        return current
    with _lock:
        if _session is None:
            inside = runtime.scheduler_address()
            if inside:
                _session = Session(Client(inside), None, "anonymous", {}, True)
            else:
                init()
        if _session is None:
            raise RuntimeError("ray.init did not start a session")
        return _session


def client() -> Client:
    return session().client
