"""``ray.cluster_resources()``, ``ray.available_resources()`` and ``ray.nodes()`` from the scheduler's view.

Each connected worker is one node. Capability names map back to Ray's: ``cpu`` is ``CPU``, ``gpu``
is ``GPU``; labels are reported as resources of 1.0; actor hosts are not nodes.
"""

from __future__ import annotations

from typing import Any

from scaler.compat.ray.session import client
from scaler.utility.capabilities import parse_capabilities

_RAY_NAMES = {"cpu": "CPU", "gpu": "GPU"}


def _workers() -> list[dict[str, Any]]:
    return [w for w in client().scheduler_status().workers if not str(w["capabilities"]).startswith("actor.")]


def _resources(text: str) -> dict[str, float]:
    caps = parse_capabilities(text)
    out = {_RAY_NAMES.get(name, name): amount for name, amount in caps.quantities}
    out.update({label: 1.0 for label in caps.labels})
    return out


def cluster_resources() -> dict[str, float]:
    total: dict[str, float] = {}
    for worker in _workers():
        for name, amount in _resources(str(worker["capabilities"])).items():
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
            "Resources": _resources(str(worker["capabilities"])),
            "alive": True,
        }
        for worker in _workers()
    ]
