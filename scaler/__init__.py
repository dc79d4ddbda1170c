"""Scaler: a distributed Python task engine (scheduler, workers, adapters, Ray-compatible API).

Names are imported on first use, so worker and task processes (which import ``scaler.worker``)
do not pay for the client and the local cluster at start-up.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from scaler.client.client import Client, ClientConfig, TaskOptions
    from scaler.client.future import Future, ObjectRef
    from scaler.cluster.local_cluster import LocalCluster, LocalClusterConfig
    from scaler.errors import (
        ActorDiedError,
        ActorUnavailableError,
        BackpressureError,
        ConnectionFailedError,
        MemoryLimitError,
        ObjectLostError,
        OwnerDiedError,
        ScalerError,
        TaskCancelledError,
        TaskTimeoutError,
        WorkerCrashedError,
        WorkerLostError,
    )

__version__ = "0.1.0"
_WHERE = {
    "Client": "scaler.client.client",
    "ClientConfig": "scaler.client.client",
    "TaskOptions": "scaler.client.client",
    "Future": "scaler.client.future",
    "ObjectRef": "scaler.client.future",
    "LocalCluster": "scaler.cluster.local_cluster",
    "LocalClusterConfig": "scaler.cluster.local_cluster",
    "ActorDiedError": "scaler.errors",
    "ActorUnavailableError": "scaler.errors",
    "BackpressureError": "scaler.errors",
    "ConnectionFailedError": "scaler.errors",
    "MemoryLimitError": "scaler.errors",
    "ObjectLostError": "scaler.errors",
    "OwnerDiedError": "scaler.errors",
    "ScalerError": "scaler.errors",
    "TaskCancelledError": "scaler.errors",
    "TaskTimeoutError": "scaler.errors",
    "WorkerCrashedError": "scaler.errors",
    "WorkerLostError": "scaler.errors",
}
__all__ = [
    "ActorDiedError",
    "ActorUnavailableError",
    "BackpressureError",
    "Client",
    "ClientConfig",
    "ConnectionFailedError",
    "Future",
    "LocalCluster",
    "LocalClusterConfig",
    "MemoryLimitError",
    "ObjectLostError",
    "ObjectRef",
    "OwnerDiedError",
    "ScalerError",
    "TaskCancelledError",
    "TaskOptions",
    "TaskTimeoutError",
    "WorkerCrashedError",
    "WorkerLostError",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'scaler' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
