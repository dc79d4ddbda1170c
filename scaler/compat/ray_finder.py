"""On a worker, ``import ray`` gives the Ray the driver sees: the installed Ray, patched, or the shim.

Where Ray is installed (and ``SCALER_RAY_SHIM`` does not say otherwise: a local cluster started by
a driver that uses the shim sets it), the first ``import ray`` in a task loads it and patches it
before the task sees it, as ``import ray; import scaler.compat.ray`` does on the driver. Elsewhere
the shim answers, with every module ``scaler.compat.ray.layout`` lists (``ray.util.queue``,
``ray.experimental.tqdm_ray``, ...). Either way ``ray.util.queue`` and the rest are then in
``sys.modules``, so only ``ray`` itself needs finding here. Kept apart from ``scaler.compat.ray``
so task processes pay nothing at start-up for it.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import types
from typing import Any

_SHIM_ENV = "SCALER_RAY_SHIM"  # the same name as scaler.compat.ray.patch.SHIM_ENV


class _ShimLoader:
    def create_module(self, spec: Any) -> types.ModuleType:
        from scaler.compat.ray.patch import install_shim

        install_shim()
        return sys.modules[spec.name]

    def exec_module(self, module: types.ModuleType) -> None:
        return None


class RayShimFinder:
    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        if name != "ray":
            return None  # ray.X: the parent's import has put our module (or Ray's) in sys.modules
        installed = None if os.environ.get(_SHIM_ENV, "") not in ("", "0") else self._installed()
        if installed is None or installed.loader is None:
            return importlib.util.spec_from_loader(name, _ShimLoader())  # type: ignore[arg-type]
        loader = installed.loader
        original = loader.exec_module

        def exec_then_patch(module: types.ModuleType) -> None:
            original(module)
            import scaler.compat.ray  # noqa: F401 - importing it patches the Ray just loaded
            from scaler.compat.ray.patch import patch_installed_ray

            patch_installed_ray()

        loader.exec_module = exec_then_patch
        return installed

    def _installed(self) -> Any:
        sys.meta_path.remove(self)
        try:
            return importlib.util.find_spec("ray")
        except (ImportError, ValueError):
            return None
        finally:
            sys.meta_path.insert(0, self)


def install_finder() -> None:
    if not any(isinstance(f, RayShimFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, RayShimFinder())
