"""``ray.util.scheduling_strategies``: Ray's strategy classes, so programs that build them run.

Scaler places a task by its capability request, its placement group and its node, so it honours
``"DEFAULT"``, ``"SPREAD"``, ``PlacementGroupSchedulingStrategy`` (``placement_groups.py``) and
``NodeAffinitySchedulingStrategy`` (a node is a worker: ``node_of``); label strategies are refused
by ``options.check`` with ``NotImplementedError`` naming the class, never silently ignored.
Building one is allowed, as in Ray, so a program fails only where it would depend on it.
"""

from __future__ import annotations

from typing import Any

from scaler.compat.ray.unsupported import module_getattr

__getattr__ = module_getattr("ray.util.scheduling_strategies")


class _Strategy:
    """A strategy: its arguments kept as given, shown by ``repr``, refused when used."""

    _fields: tuple[str, ...] = ()

    def __repr__(self) -> str:
        given = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._fields)
        return f"{type(self).__name__}({given})"


class PlacementGroupSchedulingStrategy(_Strategy):
    """Run in a bundle of a placement group (``-1``: any of its bundles)."""

    _fields = ("placement_group", "placement_group_bundle_index", "placement_group_capture_child_tasks")

    def __init__(
        self,
        placement_group: Any,
        placement_group_bundle_index: int = -1,
        placement_group_capture_child_tasks: bool | None = None,
    ) -> None:
        self.placement_group = placement_group
        self.placement_group_bundle_index = placement_group_bundle_index
        self.placement_group_capture_child_tasks = placement_group_capture_child_tasks


class NodeAffinitySchedulingStrategy(_Strategy):
    """Run on the node ``node_id`` (or, if ``soft``, preferably there)."""

    _fields = ("node_id", "soft")

    def __init__(
        self, node_id: str, soft: bool, _spill_on_unavailable: bool = False, _fail_on_unavailable: bool = False
    ) -> None:
        self.node_id = node_id
        self.soft = soft
        self._spill_on_unavailable = _spill_on_unavailable
        self._fail_on_unavailable = _fail_on_unavailable


class _LabelOperator:
    _values: tuple[str, ...] = ()

    def __init__(self, *values: str) -> None:
        self._values = tuple(values)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(map(repr, self._values))})"


class In(_LabelOperator):
    """The node label's value is one of these."""


class NotIn(_LabelOperator):
    """The node label's value is none of these."""


class Exists(_LabelOperator):
    """The node has the label."""


class DoesNotExist(_LabelOperator):
    """The node lacks the label."""


class NodeLabelSchedulingStrategy(_Strategy):
    """Run on nodes whose labels match ``hard`` (and preferably ``soft``)."""

    _fields = ("hard", "soft")

    def __init__(self, hard: dict[str, _LabelOperator], *, soft: dict[str, _LabelOperator] | None = None) -> None:
        self.hard = hard
        self.soft = soft


def refusal(strategy: Any, where: str) -> str | None:
    """Why ``strategy`` (a ``scheduling_strategy`` option) cannot be honoured, or ``None`` if it can."""
    if strategy in (None, "DEFAULT", "SPREAD") or isinstance(
        strategy, PlacementGroupSchedulingStrategy | NodeAffinitySchedulingStrategy
    ):
        return None
    if isinstance(strategy, str):
        return f"{where}: scheduling_strategy={strategy!r} is not a scheduling strategy Scaler knows"
    return (
        f"{where}: scheduling_strategy={type(strategy).__name__} is not supported by Scaler "
        f"(it places tasks by their resources, placement groups and nodes: DEFAULT, SPREAD, "
        f"PlacementGroupSchedulingStrategy and NodeAffinitySchedulingStrategy); got {strategy!r}"
    )


def node_of(options: dict[str, Any], request: str, where: str, actor: bool = False) -> str:
    """The worker a ``NodeAffinitySchedulingStrategy`` in ``options`` places the work on ("" for none).
    The node must be connected and able to hold ``request`` (counting what placement groups reserve on
    it, which comes back when they go: the work waits, as in Ray); otherwise a soft affinity is dropped
    and a hard one raises ``TaskUnschedulableError`` (``ActorUnschedulableError``) here, at ``.remote()``.
    A driver's node id is its host's name (``get_node_id``): that is the first worker, by name, on
    that host able to hold ``request``, so that work pinned to the driver's node runs there, as in Ray."""
    strategy = options.get("scheduling_strategy")
    if not isinstance(strategy, NodeAffinitySchedulingStrategy):
        return ""
    from scaler.compat.ray import exceptions as rx
    from scaler.compat.ray.resources import whole
    from scaler.compat.ray.session import client
    from scaler.utility.capabilities import DEDICATED_PREFIX, parse_capabilities

    asked = parse_capabilities(request)
    node_id = str(strategy.node_id)
    workers = {str(w["name"]): w for w in client().scheduler_status().workers}
    caps = str(workers[node_id]["capabilities"]) if node_id in workers else None
    if caps is not None and whole(caps).serves(asked):  # what groups reserve comes back
        return node_id
    if caps is None:  # a driver's node: a worker on its host
        on_host = sorted(
            name
            for name, w in workers.items()
            if str(w.get("host", "")) == node_id
            and not str(w["capabilities"]).startswith(DEDICATED_PREFIX)
            and whole(str(w["capabilities"])).serves(asked)
        )
        if on_host:
            return on_host[0]
    if strategy.soft:
        return ""
    error = rx.ActorUnschedulableError if actor else rx.TaskUnschedulableError
    why = "is not connected" if caps is None else f"cannot hold {request or 'it'} ({caps})"
    raise error(
        f"{where} is not schedulable: the node {strategy.node_id} given by NodeAffinitySchedulingStrategy {why}, "
        "and soft=False was given"
    )


__all__ = [
    "DoesNotExist",
    "Exists",
    "In",
    "NodeAffinitySchedulingStrategy",
    "NodeLabelSchedulingStrategy",
    "NotIn",
    "PlacementGroupSchedulingStrategy",
]
