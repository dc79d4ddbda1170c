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
    from scaler.cluster.ephemeral import Cluster, ClusterActivationError, ClusterTeardownError
    from scaler.cluster.local_cluster import LocalCluster, LocalClusterConfig
    from scaler.cluster.nodes import AutoscalerConfig, ClusterConfig, NodeConfig, ScalingGroup, SimpleCluster
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
    "Cluster": "scaler.cluster.ephemeral",
    "ClusterActivationError": "scaler.cluster.ephemeral",
    "ClusterTeardownError": "scaler.cluster.ephemeral",
    "AutoscalerConfig": "scaler.cluster.nodes",
    "ClusterConfig": "scaler.cluster.nodes",
    "NodeConfig": "scaler.cluster.nodes",
    "ScalingGroup": "scaler.cluster.nodes",
    "SimpleCluster": "scaler.cluster.nodes",
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
    "AutoscalerConfig",
    "BackpressureError",
    "Client",
    "ClientConfig",
    "Cluster",
    "ClusterActivationError",
    "ClusterConfig",
    "ClusterTeardownError",
    "ConnectionFailedError",
    "Future",
    "LocalCluster",
    "LocalClusterConfig",
    "MemoryLimitError",
    "NodeConfig",
    "ObjectLostError",
    "ObjectRef",
    "OwnerDiedError",
    "ScalerError",
    "ScalingGroup",
    "SimpleCluster",
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
