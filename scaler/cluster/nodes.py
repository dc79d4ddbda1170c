"""A cluster's shape in code, with Sematic's names, so a ``with RayCluster(...)`` step ports by its imports.

``NodeConfig`` (``RayNodeConfig``), ``ScalingGroup``, ``AutoscalerConfig``, ``ClusterConfig``
(``RayClusterConfig``) and ``SimpleCluster`` (``SimpleRayCluster``) take the same parameter names
and refuse the same mistakes (a negative count, ``min_workers > max_workers``, ``max_nodes <
n_nodes``). Each scaling group becomes one worker group of the chosen provider: one worker per unit
whose capabilities are the node's (``cpu``, ``memory`` in bytes, ``gpu``), ``min_workers`` and
``max_workers`` its unit bounds. The head node is where the scheduler runs (the caller's machine,
or the host the deployment file names); its ``NodeConfig`` is checked and kept, not launched. The
autoscaler here is the adapter inside the cluster's process: ``AutoscalerConfig`` is checked and
otherwise unused.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from scaler.config.schema import GroupSection
from scaler.utility.capabilities import from_mapping

GIB = 1 << 30


def _at_least(name: str, number: float, bound: float) -> None:
    if number < bound:
        raise ValueError(f"{name} must be >= {bound:g}, got {number!r}")


@dataclass(frozen=True)
class NodeConfig:
    cpu: float
    memory_gb: float
    gpu_count: int = 0

    def __post_init__(self) -> None:
        _at_least("cpu", self.cpu, 0)
        _at_least("memory_gb", self.memory_gb, 0)
        _at_least("gpu_count", self.gpu_count, 0)

    def capabilities(self) -> str:
        """What one worker on such a node advertises."""
        quantities = {"cpu": float(self.cpu), "memory": float(int(self.memory_gb * GIB)), "gpu": float(self.gpu_count)}
        return from_mapping(quantities)


@dataclass(frozen=True)
class ScalingGroup:
    worker_nodes: NodeConfig
    min_workers: int = 0
    max_workers: int = 0

    def __post_init__(self) -> None:
        _at_least("min_workers", self.min_workers, 0)
        _at_least("max_workers", self.max_workers, 0)
        if self.min_workers > self.max_workers:
            raise ValueError(f"min_workers ({self.min_workers}) must be <= max_workers ({self.max_workers})")


@dataclass(frozen=True)
class AutoscalerConfig:
    cpu: float = 1.0
    memory_gb: float = 1.0

    def __post_init__(self) -> None:
        _at_least("cpu", self.cpu, 0)
        _at_least("memory_gb", self.memory_gb, 0)


@dataclass(frozen=True)
class ClusterConfig:
    head_node: NodeConfig
    scaling_groups: list[ScalingGroup] = field(default_factory=list)
    autoscaler_config: AutoscalerConfig | None = None

    def __post_init__(self) -> None:
        if not self.scaling_groups:
            raise ValueError("a ClusterConfig needs at least one ScalingGroup")

    def groups(self) -> list[GroupSection]:
        """The provider's worker groups: ``group0``, ``group1``... in the scaling groups' order."""
        return [
            GroupSection(
                name=f"group{index}",
                capabilities=group.worker_nodes.capabilities(),
                min_units=group.min_workers,
                max_units=group.max_workers,
            )
            for index, group in enumerate(self.scaling_groups)
        ]


def SimpleCluster(
    n_nodes: int,
    node_config: NodeConfig,
    max_nodes: int | None = None,
    autoscaler_config: AutoscalerConfig | None = None,
) -> ClusterConfig:
    """``n_nodes`` workers of ``node_config``, scaling up to ``max_nodes`` with the queue."""
    _at_least("n_nodes", n_nodes, 1)
    top = n_nodes if max_nodes is None else max_nodes
    if top < n_nodes:
        raise ValueError(f"max_nodes ({top}) must be >= n_nodes ({n_nodes})")
    return ClusterConfig(node_config, [ScalingGroup(node_config, n_nodes, top)], autoscaler_config)
