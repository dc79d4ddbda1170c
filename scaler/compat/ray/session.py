"""``ray.init``/``scaler_init``/``ray.shutdown``: one process-wide connection to a scheduler.

With no address, ``init`` starts a ``LocalCluster`` of one worker sized like a Ray node
(``num_cpus`` default: this machine's CPUs; ``num_gpus`` default 0; ``resources``; ``memory``:
this machine's RAM in bytes), so ``num_cpus=2`` tasks on a 2-cpu cluster run one at a time as in
Ray. ``address="tcp://..."`` (or ``SCALER_ADDRESS``) connects to a running scheduler instead.
``scaler_init`` is the OpenGRIS Scaler way in, called before any Ray call: an address to use a
running scheduler, or the shape of the local cluster (``n_workers``, default one per CPU core, each
``cpu=1``, plus scheduler and worker options); a bare ``ray.init()`` afterwards joins its session.
Inside a task the API connects itself to the task's scheduler, which counts as initialized.
The session holds the job's namespace: ``namespace=`` or an anonymous one of its own
(``namespaces.py``); inside a task, the namespace of the job that submitted it applies instead.
A program that ends without ``ray.shutdown()`` gets one at exit, as in Ray: the driver's client
says goodbye first, then the local cluster stops.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import psutil

from scaler.client.client import Client, ClientConfig
from scaler.cluster.local_cluster import LocalCluster, LocalClusterConfig
from scaler.compat.ray import namespaces
from scaler.compat.ray.options import capability_string, runtime_env_vars
from scaler.compat.ray.patch import workers_env
from scaler.config.flags import FlagError, check_flags, timing_problem
from scaler.config.schema import SCHEDULER_TUNING, WORKER_TUNING, SchedulerFlags, WorkerFlags
from scaler.utility.capabilities import CapabilityError, canonical
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
    namespace: str  # the job's: given to ray.init, or anonymous (in a task process: see current_namespace)
    env_vars: dict[str, str] = field(default_factory=dict)
    log_to_driver: bool = True
    by_scaler_init: bool = False


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
            if _session.by_scaler_init:
                given = {
                    "address": address,
                    "num_cpus": num_cpus,
                    "num_gpus": num_gpus,
                    "resources": resources,
                    "memory": memory,
                    "namespace": namespace,
                    "runtime_env": runtime_env,
                    "log_to_driver": log_to_driver,
                    **kwargs,
                }
                named = [name for name, value in given.items() if value is not None and name != "namespace"]
                if not named:  # the Ray program scaler_init() was called for starts as it always did
                    if namespace is not None:  # shapes no cluster: the job's namespace from now on
                        _session.namespace = namespaces.checked(namespace, "ray.init")
                    return RayContext(_session.client.address)
                raise RuntimeError(
                    f"ray.init({', '.join(named)}=...) after scaler_init(): the session scaler_init() started "
                    "is in use; call ray.init() without arguments, or give those options to scaler_init()"
                )
            raise RuntimeError("Maybe you called ray.init twice by accident? Use ray.init(ignore_reinit_error=True).")
        env_vars = runtime_env_vars(runtime_env, "ray.init")
        job_namespace = namespaces.anonymous() if namespace is None else namespaces.checked(namespace, "ray.init")
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
            config = LocalClusterConfig(extra_env={**workers_env(), **env_vars})
            cluster = LocalCluster(n_workers=1, capabilities=caps, config=config)
            address = cluster.address
        client = _connect(address, cluster, ClientConfig(name="ray-driver"))
        _session = Session(client, cluster, job_namespace, env_vars, drive)
        return RayContext(address)


def scaler_init(
    address: str | None = None,
    *,
    n_workers: int | None = None,
    capabilities: str | Mapping[str, float] | None = None,
    host: str | None = None,
    port: int | None = None,
    log_level: str | None = None,
    start_timeout: float | None = None,
    curve_keys: str | None = None,
    insecure: bool | None = None,
    heartbeat_interval: float | None = None,
    peer_timeout: float | None = None,
    max_queued_tasks: int | None = None,
    max_queued_bytes: int | None = None,
    max_message_bytes: int | None = None,
    prefetch: int | None = None,
    death_timeout: float | None = None,
    task_memory_limit_mb: float | None = None,
    cancel_grace: float | None = None,
    **unknown: Any,
) -> RayContext:
    """Initialize the Ray API on Scaler, before any other Ray call (OpenGRIS Scaler's entry point).

    ``scaler_init(address="tcp://HOST:PORT")`` uses that running scheduler; no local cluster starts.
    Otherwise a local cluster starts, shaped by the options: ``n_workers`` workers (default: one per
    CPU core), each with ``capabilities`` (default ``"cpu=1"``: one task at a time; a string such as
    ``"cpu=2,gpu=1,linux"`` or a mapping such as ``{"cpu": 2}``); the scheduler bound to ``host``:
    ``port`` (default 127.0.0.1, a free port; another interface needs ``curve_keys``, a directory made
    by ``scaler_keygen``, or ``insecure=True``) with its ``heartbeat_interval``, ``peer_timeout``,
    per-client ``max_queued_tasks``/``max_queued_bytes``, ``max_message_bytes`` and ``prefetch``; each
    worker with ``death_timeout``, ``task_memory_limit_mb`` and ``cancel_grace`` (the flags of
    ``scaler_scheduler`` and ``scaler_worker`` of the same names); the cluster's processes logging at
    ``log_level`` (default WARNING); up to ``start_timeout`` seconds to start. The call returns once
    every worker has joined. With no ``address``, ``SCALER_ADDRESS`` (which ``python -m
    scaler.compat.ray --address`` sets) takes the local cluster's place, as for ``ray.init``, and the
    options then shape nothing.

    Raises ``RuntimeError`` if the API is already initialized (``ray.init``, ``scaler_init`` or a
    first Ray call; ``ray.shutdown()`` ends that), ``TypeError`` naming any option not listed here,
    and ``ValueError`` for cluster options given with an explicit ``address`` or for bad values. A
    bare ``ray.init()`` afterwards returns this session, so a Ray program runs unchanged below it.
    """
    global _session
    if unknown:
        raise TypeError(
            f"scaler_init() got unknown options: {', '.join(sorted(unknown))} "
            f"(it takes address and {', '.join(_SCALER_INIT_OPTIONS)})"
        )
    given = {
        "n_workers": n_workers,
        "capabilities": capabilities,
        "host": host,
        "port": port,
        "log_level": log_level,
        "start_timeout": start_timeout,
        "curve_keys": curve_keys,
        "insecure": insecure,
        "heartbeat_interval": heartbeat_interval,
        "peer_timeout": peer_timeout,
        "max_queued_tasks": max_queued_tasks,
        "max_queued_bytes": max_queued_bytes,
        "max_message_bytes": max_message_bytes,
        "prefetch": prefetch,
        "death_timeout": death_timeout,
        "task_memory_limit_mb": task_memory_limit_mb,
        "cancel_grace": cancel_grace,
    }
    options = {name: value for name, value in given.items() if value is not None}
    if address is not None:
        if not isinstance(address, str) or not address.startswith("tcp://"):
            raise ValueError(f"scaler_init(address={address!r}): give a scheduler's tcp://HOST:PORT address")
        if options:
            raise ValueError(
                f"scaler_init(address=..., {'=..., '.join(options)}=...): those options shape a local "
                "cluster, and with an address none starts"
            )
    config = _local_cluster_config(options)  # checked even when SCALER_ADDRESS makes it unused
    with _lock:
        if is_initialized():
            raise RuntimeError(
                "scaler_init(): the Ray API is already initialized (by ray.init(), scaler_init() or a first "
                "Ray call); call scaler_init() once, before any other Ray call, or ray.shutdown() first"
            )
        address = address or os.environ.get("SCALER_ADDRESS") or None
        cluster = None
        if address is None:
            cluster = LocalCluster(config=config)
            address = cluster.address
        beat = heartbeat_interval if cluster is not None and heartbeat_interval else ClientConfig.heartbeat_interval
        client = _connect(address, cluster, ClientConfig(name="ray-driver", heartbeat_interval=beat))
        _session = Session(client, cluster, namespaces.anonymous(), by_scaler_init=True)
        return RayContext(address)


_SCALER_INIT_OPTIONS = tuple(scaler_init.__kwdefaults__ or {})
_INTEGERS = {"n_workers": 1, "port": 0}  # the smallest value each integer option takes
_SECONDS = ("start_timeout",)  # > 0; the scheduler's and workers' own knobs follow their commands' rules


def _local_cluster_config(options: dict[str, Any]) -> LocalClusterConfig:
    """The ``LocalClusterConfig`` that ``scaler_init``'s options describe; ``ValueError`` if one is bad."""
    for name, value in options.items():
        if name in _INTEGERS:
            if isinstance(value, bool) or not isinstance(value, int) or value < _INTEGERS[name]:
                raise ValueError(f"scaler_init({name}={value!r}): expected an integer >= {_INTEGERS[name]}")
        elif name in _SECONDS:
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ValueError(f"scaler_init({name}={value!r}): expected a number > 0")
        elif name == "insecure" and not isinstance(value, bool):
            raise ValueError(f"scaler_init(insecure={value!r}): expected True or False")
        elif name in ("host", "curve_keys", "log_level") and not isinstance(value, str):
            raise ValueError(f"scaler_init({name}={value!r}): expected a string")
    if options.get("port", 0) > 65535:
        raise ValueError(f"scaler_init(port={options['port']}): expected a TCP port (0 for any free one)")
    for names, schema in ((SCHEDULER_TUNING, SchedulerFlags), (WORKER_TUNING, WorkerFlags)):
        given = {name: options[name] for name in names if name in options}
        try:
            check_flags(given, schema)
        except FlagError as exc:
            raise ValueError(f"scaler_init({exc.key}={given.get(exc.key)!r}): {exc.why}") from None
    why = timing_problem(options.get("heartbeat_interval", 1.0), options.get("peer_timeout", 10.0))
    if why:
        raise ValueError(f"scaler_init(): {why}")
    level = str(options.get("log_level", "WARNING")).upper()
    if not isinstance(logging.getLevelName(level), int):
        raise ValueError(f"scaler_init(log_level={options['log_level']!r}): expected a level such as 'INFO'")
    caps = options.get("capabilities", "cpu=1")
    if isinstance(caps, Mapping):
        caps = ",".join(f"{name}={amount}" for name, amount in caps.items())
    if not isinstance(caps, str):
        raise ValueError(f"scaler_init(capabilities={caps!r}): expected a string like 'cpu=2,gpu=1' or a dict")
    try:
        caps = canonical(caps)
    except CapabilityError as exc:
        raise ValueError(f"scaler_init(capabilities={caps!r}): {exc}") from None
    return LocalClusterConfig(
        n_workers=options.get("n_workers") or os.cpu_count() or 1,
        capabilities=caps,
        host=options.get("host", "127.0.0.1"),
        port=options.get("port", 0),
        log_level=level,
        scheduler_args=_flags(options, SCHEDULER_TUNING),
        worker_args=_flags(options, WORKER_TUNING),
        start_timeout=float(options.get("start_timeout", 30.0)),
        curve_keys=options.get("curve_keys"),
        insecure=options.get("insecure", False),
        extra_env=workers_env(),
    )


def _flags(options: dict[str, Any], names: tuple[str, ...]) -> tuple[str, ...]:
    out: list[str] = []
    for name in names:
        if name in options:
            out += [f"--{name.replace('_', '-')}", str(options[name])]
    return tuple(out)


def _connect(address: str, cluster: LocalCluster | None, config: ClientConfig) -> Client:
    """The driver's client; with a cluster of our own, once all its workers have joined (as Ray
    returns from init once the local node is up), else that cluster stops again."""
    client: Client | None = None
    try:
        client = Client(address, config)
        if cluster is not None:
            _wait_for_workers(client, cluster.n_workers, max(60.0, cluster.config.start_timeout))
        return client
    except BaseException:
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.shutdown()
        raise


def _wait_for_workers(client: Client, count: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while int(client.scheduler_status().status["workers"]) < count:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the local workers did not join within {timeout:g}s")
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
                _session = Session(Client(inside), None, namespaces.anonymous(), {}, True)
            else:
                init()
        if _session is None:
            raise RuntimeError("ray.init did not start a session")
        return _session


def client() -> Client:
    return session().client


def current_namespace() -> str:
    """The namespace Ray calls would use here: in a task or actor, its job's (shipped with it,
    since the process and its session serve many jobs); elsewhere, this session's."""
    return namespaces.of_task() or session().namespace
