"""``ray.cluster_resources()``, ``ray.available_resources()`` and ``ray.nodes()`` from the scheduler's view.

Each connected worker is one node. Capability names map back to Ray's: ``cpu`` is ``CPU``, ``gpu``
is ``GPU``; labels are reported as resources of 1.0; actor hosts are not nodes. What placement
groups reserve counts in the totals and not in what is available, as in Ray.
"""

from __future__ import annotations

from typing import Any

from scaler.compat.ray.options import ray_name
from scaler.compat.ray.session import client
from scaler.scheduler.bundles import reserved_as_own
from scaler.utility.capabilities import PG_PREFIX, Capabilities, parse_capabilities


def _workers() -> list[dict[str, Any]]:
    return [w for w in client().scheduler_status().workers if not str(w["capabilities"]).startswith("actor.")]


def whole(text: str) -> Capabilities:
    """A worker's capabilities (a status string) with what placement groups reserve on it counted back."""
    return reserved_as_own(parse_capabilities(text))


def _resources(text: str, reserved: bool = False) -> dict[str, float]:
    """Ray's view of a capability string; a placement group's quantities (``pg.<id>.<name>``, what its
    bundles hold) count as their own resource's with ``reserved`` (the totals), else not at all."""
    caps = whole(text) if reserved else parse_capabilities(text)
    out: dict[str, float] = {}
    for name, amount in caps.quantities:
        if not name.startswith(PG_PREFIX):
            key = ray_name(name)
            out[key] = out.get(key, 0.0) + amount
    out.update({label: 1.0 for label in caps.labels})
    return out


def cluster_resources() -> dict[str, float]:
    total: dict[str, float] = {}
    for worker in _workers():
        for name, amount in _resources(str(worker["capabilities"]), reserved=True).items():
            total[name] = total.get(name, 0.0) + amount
    return total


def available_resources() -> dict[str, float]:
    free: dict[str, float] = {}
    for worker in _workers():
        have = _resources(str(worker["capabilities"]))
        used = _resources(str(worker.get("committed", "")))
        for name, amount in have.items():
            left = amount - used.get(name, 0.0)
            if left > 0:
                free[name] = free.get(name, 0.0) + left
    return free


def nodes() -> list[dict[str, Any]]:
    return [
        {
            "NodeID": str(worker["name"]),
            "Alive": True,
            "NodeManagerAddress": str(worker.get("host", "")),
            "NodeManagerHostname": str(worker.get("host", "")),
            "Resources": _resources(str(worker["capabilities"]), reserved=True),
            "alive": True,
        }
        for worker in _workers()
    ]
