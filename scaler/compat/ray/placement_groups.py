"""``ray.util.placement_group``: the module exists, and its calls refuse until placement groups are built.

Every function raises ``NotImplementedError`` naming itself, on the driver and in tasks, so a
program that reserves bundles fails where it asks for them rather than running unreserved.
``PlacementGroup`` exists for type annotations and ``isinstance`` checks; nothing makes one.
"""

from __future__ import annotations

from typing import Any

from scaler.compat.ray.unsupported import module_getattr, not_supported

__getattr__ = module_getattr("ray.util.placement_group")

_PREFIX = "ray.util.placement_group"

placement_group = not_supported(f"{_PREFIX}.placement_group")
get_placement_group = not_supported(f"{_PREFIX}.get_placement_group")
remove_placement_group = not_supported(f"{_PREFIX}.remove_placement_group")
placement_group_table = not_supported(f"{_PREFIX}.placement_group_table")
get_current_placement_group = not_supported(f"{_PREFIX}.get_current_placement_group")


class PlacementGroup:
    """A placement group's handle. Placement groups are not built, so making one is refused."""

    def __init__(self, *_: Any, **__: Any) -> None:
        raise NotImplementedError(f"{_PREFIX}.PlacementGroup is not supported by Scaler")


__all__ = [
    "PlacementGroup",
    "get_current_placement_group",
    "get_placement_group",
    "placement_group",
    "placement_group_table",
    "remove_placement_group",
]
