"""On a worker, ``import ray`` gives the compat API (never a real Ray), loaded only when imported.

Kept apart from ``scaler.compat.ray`` so task processes pay nothing at start-up for it.
"""

from __future__ import annotations

import importlib.util
import sys
import types
from typing import Any

_NAMES = ("ray", "ray.util", "ray.exceptions", "ray.actor", "ray.util.actor_pool")


class _ShimLoader:
    def create_module(self, spec: Any) -> types.ModuleType:
        from scaler.compat.ray.patch import install_shim

        install_shim()
        return sys.modules[spec.name]

    def exec_module(self, module: types.ModuleType) -> None:
        return None


class RayShimFinder:
    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        if name not in _NAMES:
            return None
        return importlib.util.spec_from_loader(name, _ShimLoader())  # type: ignore[arg-type]


def install_finder() -> None:
    if not any(isinstance(f, RayShimFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, RayShimFinder())
