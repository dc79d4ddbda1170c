"""Scaler: a distributed Python task engine (scheduler, workers, adapters, Ray-compatible API)."""

from scaler.client.client import Client, ClientConfig, TaskOptions
from scaler.client.future import Future, ObjectRef
from scaler.cluster.local_cluster import LocalCluster, LocalClusterConfig
from scaler.errors import (
    BackpressureError,
    ConnectionFailedError,
    MemoryLimitError,
    ObjectLostError,
    ScalerError,
    TaskCancelledError,
    TaskTimeoutError,
    WorkerCrashedError,
)

__version__ = "0.1.0"
__all__ = [
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
    "ScalerError",
    "TaskCancelledError",
    "TaskOptions",
    "TaskTimeoutError",
    "WorkerCrashedError",
]
