"""``ray.util.placement_group``: Ray's placement groups on Scaler's bundle reservations.

``placement_group(bundles, strategy)`` asks the scheduler to reserve every bundle at once (all or
nothing, ``scaler/scheduler/bundles.py``), a worker being a node; ``ready()`` is a ref that is ready
once the group is placed (as in Ray, a task of no resources run inside the group), ``wait`` waits
for it. Tasks and actors run inside a bundle with
``scheduling_strategy=PlacementGroupSchedulingStrategy(pg, bundle_index, capture_child_tasks)`` or
Ray's older ``placement_group=`` options; a request no bundle can hold raises ``ValueError`` at
``.remote()``, as in Ray. Inside a task or actor of a group, ``get_current_placement_group()`` is
that group, and with ``capture_child_tasks`` the tasks it submits run in the group too. A group ends
with its job unless ``lifetime="detached"``; a pending group is demand that the scaling policy
launches units for. Unlike Ray, the tasks of a removed group end with ``TaskCancelledError``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from scaler.client.client import TaskOptions
from scaler.compat.ray.options import ray_name, scaler_name
from scaler.compat.ray.unsupported import module_getattr
from scaler.protocol import messages as m
from scaler.utility.capabilities import Capabilities, from_mapping, parse_capabilities

__getattr__ = module_getattr("ray.util.placement_group")

STRATEGIES = ("PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD")
_current: list[tuple[PlacementGroup, bool]] = []  # in a task or actor of a group: it, and capture_child_tasks


class PlacementGroupID:
    """A placement group's id, shown in hex as Ray's."""

    def __init__(self, binary: bytes) -> None:
        self._binary = bytes(binary)

    @classmethod
    def from_hex(cls, text: str) -> PlacementGroupID:
        return cls(bytes.fromhex(text))

    @classmethod
    def nil(cls) -> PlacementGroupID:
        return cls(b"\xff" * 18)

    def binary(self) -> bytes:
        return self._binary

    def hex(self) -> str:
        return self._binary.hex()

    def is_nil(self) -> bool:
        return self._binary == b"\xff" * 18

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PlacementGroupID) and other._binary == self._binary

    def __hash__(self) -> int:
        return hash(self._binary)

    def __repr__(self) -> str:
        return f"PlacementGroupID({self.hex()})"


class PlacementGroup:
    """A handle to a placement group: picklable, so tasks may be handed one."""

    @staticmethod
    def empty() -> PlacementGroup:
        return PlacementGroup(PlacementGroupID.nil())

    def __init__(self, id: PlacementGroupID, bundle_cache: list[dict[str, float]] | None = None) -> None:
        self.id = id
        self.bundle_cache = bundle_cache

    @property
    def is_empty(self) -> bool:
        return self.id.is_nil()

    @property
    def bundle_specs(self) -> list[dict[str, float]]:
        if not self.bundle_cache:
            self.bundle_cache = list(placement_group_table(self).get("bundles", {}).values())
        return self.bundle_cache

    @property
    def bundle_count(self) -> int:
        return len(self.bundle_specs)

    def ready(self) -> Any:
        """A ref whose value is this group, ready once every bundle is reserved."""
        from scaler.compat.ray.refs import ObjectRef
        from scaler.compat.ray.session import client

        if self.is_empty:
            from scaler.compat.ray import put

            return put(self)
        opts = TaskOptions(capabilities="", name="placement_group.ready", placement=self.id.hex())
        return ObjectRef(client().submit_with(opts, _ready, (self,), {})[0], "placement_group.ready")

    def wait(self, timeout_seconds: float = 30) -> bool:
        """Whether the group is placed within ``timeout_seconds``."""
        from scaler.compat.ray.refs import wait

        ready, _ = wait([self.ready()], timeout=timeout_seconds)
        return bool(ready)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PlacementGroup) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return PlacementGroup, (self.id, self.bundle_cache)

    def __repr__(self) -> str:
        return f"PlacementGroup({self.id.hex()})"


def _ready(group: PlacementGroup) -> PlacementGroup:
    return group


def _bundle_capabilities(bundle: dict[str, float]) -> str:
    return from_mapping({scaler_name(name): float(amount) for name, amount in bundle.items()})


_SHAPE = 'Bundles must be a non-empty list of resource dictionaries. For example: `[{"CPU": 1.0}, {"GPU": 1.0}]`.'


def _check_bundles(bundles: Any) -> None:
    if not isinstance(bundles, list):
        raise ValueError(f"Placement group bundles must be a list, got {type(bundles)}.")
    if not bundles:
        raise ValueError(f"{_SHAPE} Got empty list instead.")
    for bundle in bundles:
        if not (
            isinstance(bundle, dict)
            and all(isinstance(k, str) for k in bundle)
            and all(isinstance(v, int | float) and not isinstance(v, bool) for v in bundle.values())
        ):
            raise ValueError(_SHAPE)
        if not bundle or all(v == 0 for v in bundle.values()):
            raise ValueError(
                f"Bundles cannot be an empty dictionary or resources with only 0 values. Bundles: {bundles}"
            )
        if any(v < 0 for v in bundle.values()):
            raise ValueError(f"Bundle resources must be >= 0. Bundles: {bundles}")


def placement_group(
    bundles: list[dict[str, float]],
    strategy: str | None = None,
    name: str = "",
    lifetime: str | None = None,
    _soft_target_node_id: str | None = None,
    bundle_label_selector: list[dict[str, str]] | None = None,
    topology_strategy: dict[str, str] | None = None,
) -> PlacementGroup:
    """Reserve ``bundles`` together (asynchronously: ``ready()`` tells when)."""
    from scaler.compat.ray.session import client

    if strategy is not None and strategy not in STRATEGIES:
        raise ValueError(f"Invalid placement group strategy {strategy}. Supported strategies are: {STRATEGIES}.")
    if lifetime not in (None, "detached"):
        raise ValueError(f"Placement group `lifetime` argument must be either `None` or 'detached'. Got {lifetime}.")
    unsupported = {
        "_soft_target_node_id": _soft_target_node_id,
        "bundle_label_selector": bundle_label_selector,
        "topology_strategy": topology_strategy,
    }
    for option, given in unsupported.items():
        if given:
            raise NotImplementedError(f"ray.util.placement_group.placement_group({option}=...) is not supported")
    _check_bundles(bundles)
    group_id = PlacementGroupID(os.urandom(18))
    caps = [_bundle_capabilities(bundle) for bundle in bundles]
    client().send_control(m.ReserveBundles(group_id.hex(), caps, strategy or "PACK", name, lifetime == "detached"))
    return PlacementGroup(group_id, [{k: float(v) for k, v in bundle.items()} for bundle in bundles])


def remove_placement_group(placement_group: PlacementGroup) -> None:
    """End the group: its reservations go and its unfinished tasks are cancelled."""
    from scaler.compat.ray.session import client

    if placement_group is None:
        raise ValueError("remove_placement_group needs a placement group, got None")
    client().send_control(m.FreeBundles(placement_group.id.hex()))


def _infos() -> list[m.PlacementGroupInfo]:
    from scaler.compat.ray.session import client

    return list(client().scheduler_status().placement_groups)


def _ray_bundle(caps: str) -> dict[str, float]:
    return {ray_name(name): amount for name, amount in parse_capabilities(caps).quantities}


def _table_entry(info: m.PlacementGroupInfo) -> dict[str, Any]:
    return {
        "placement_group_id": info.pg_id,
        "name": info.name,
        "bundles": {i: _ray_bundle(caps) for i, caps in enumerate(info.bundles)},
        "bundles_to_node_id": {i: node for i, node in enumerate(info.workers) if node},
        "strategy": info.strategy,
        "state": info.state,
        "stats": {},
    }


def placement_group_table(placement_group: PlacementGroup | None = None) -> dict[Any, Any]:
    """One group's state as Ray gives it (``"REMOVED"`` once it is gone), or every live group's by id."""
    infos = _infos()
    if placement_group is None:
        return {info.pg_id: _table_entry(info) for info in infos}
    wanted = placement_group.id.hex()
    for info in infos:
        if info.pg_id == wanted:
            return _table_entry(info)
    bundles = placement_group.bundle_cache or []
    return {
        "placement_group_id": wanted,
        "name": "",
        "bundles": dict(enumerate(bundles)),
        "bundles_to_node_id": {},
        "strategy": "",
        "state": "REMOVED",
        "stats": {},
    }


def get_placement_group(placement_group_name: str) -> PlacementGroup:
    """The live group of that name."""
    for info in _infos():
        if info.name == placement_group_name and placement_group_name:
            return PlacementGroup(PlacementGroupID.from_hex(info.pg_id), [_ray_bundle(c) for c in info.bundles])
    raise ValueError(f"Failed to look up placement group with name: {placement_group_name}")


def get_current_placement_group() -> PlacementGroup | None:
    """The group the current task or actor runs in; ``None`` on a driver or outside any group."""
    return _current[-1][0] if _current else None


@contextmanager
def running_in(placement: tuple[PlacementGroup, bool] | None) -> Iterator[None]:
    """In a task process: the code of the block runs in ``placement`` (a group, and capture_child_tasks)."""
    if placement is None:
        yield
        return
    _current.append(placement)
    try:
        yield
    finally:
        _current.remove(placement)


def placement_of(options: dict[str, Any], request: str, where: str) -> tuple[PlacementGroup, int, bool] | None:
    """The group, bundle index and capture flag that ``options`` place a task in (``None``: none). A
    child of a task that captures its children runs in its group unless told otherwise, as in Ray."""
    from scaler.compat.ray.scheduling_strategies import PlacementGroupSchedulingStrategy

    strategy = options.get("scheduling_strategy")
    given = options.get("placement_group", "default")
    if isinstance(strategy, PlacementGroupSchedulingStrategy):
        if given not in ("default", None):
            raise ValueError(f"{where}: placement_group and scheduling_strategy cannot both be given")
        group = strategy.placement_group
        index = strategy.placement_group_bundle_index
        capture = bool(strategy.placement_group_capture_child_tasks)
    elif given != "default":
        group = given
        index = options.get("placement_group_bundle_index", -1)
        capture = bool(options.get("placement_group_capture_child_tasks"))
    elif strategy is None and _current and _current[-1][1]:
        group, capture = _current[-1]
        index = -1
    else:
        return None
    if group is None or (isinstance(group, PlacementGroup) and group.is_empty):
        return None
    if not isinstance(group, PlacementGroup):
        raise TypeError(f"{where}: placement_group must be a PlacementGroup, got {type(group).__name__}")
    specs = group.bundle_specs
    if not isinstance(index, int) or not -1 <= index < len(specs):
        raise ValueError(f"{where}: bundle index {index} is invalid for a placement group of {len(specs)} bundles")
    asked = Capabilities(parse_capabilities(request).quantities, frozenset())
    targets = specs if index < 0 else [specs[index]]
    if not any(parse_capabilities(_bundle_capabilities(b)).serves(asked) for b in targets):
        raise ValueError(
            f"Cannot schedule {where} with the placement group because the resource request {asked.as_dict()} "
            "cannot fit into "
            f"any bundles for the placement group, {targets}."
        )
    return group, index, capture


__all__ = [
    "PlacementGroup",
    "get_current_placement_group",
    "get_placement_group",
    "placement_group",
    "placement_group_table",
    "remove_placement_group",
]
