"""Putting the compat API in place of Ray: over an installed, imported Ray, or as ``ray`` itself.

``patch_installed_ray`` replaces the public API of an already-imported ``ray`` package (and of
``ray.util``, ``ray.exceptions``, ``ray.actor``, ``ray.util.actor_pool``) with ours, and the public
callables we do not implement with stand-ins raising ``NotImplementedError`` naming them. Nothing
of Ray's is called afterwards, so no Ray process can start. ``install_shim`` makes ``import ray``
give this package when no Ray is installed (task processes always do this, so tasks never start
Ray either).
"""

from __future__ import annotations

import sys
import types
from typing import Any

from scaler.compat.ray.unsupported import PLACEMENT_GROUP_CALLABLES, RAY_CALLABLES, UTIL_CALLABLES, not_supported

_API = (
    "init",
    "shutdown",
    "is_initialized",
    "remote",
    "get",
    "put",
    "wait",
    "cancel",
    "kill",
    "get_actor",
    "method",
    "available_resources",
    "cluster_resources",
    "nodes",
    "get_runtime_context",
    "ObjectRef",
    "ObjectRefGenerator",
    "DynamicObjectRefGenerator",
)
_UTIL_API = ("as_completed", "map_unordered", "ActorPool", "get_node_ip_address")


def _compat() -> types.ModuleType:
    return sys.modules["scaler.compat.ray"]


def is_real_ray(module: Any) -> bool:
    return (
        isinstance(module, types.ModuleType)
        and not module.__name__.startswith("scaler.")
        and (getattr(module, "__file__", None) is not None)
    )


def patch_installed_ray() -> bool:
    real = sys.modules.get("ray")
    if real is None or not is_real_ray(real) or getattr(real, "__scaler_patched__", False):
        return False
    compat = _compat()
    for name in _API:
        setattr(real, name, getattr(compat, name))
    _stub(real, "ray", RAY_CALLABLES)
    from scaler.compat.ray import actors, exceptions, util

    real_exceptions = sys.modules.get("ray.exceptions")
    if real_exceptions is not None:
        for name in exceptions.__all__:  # all of them, or Ray's classes would not derive from ours
            setattr(real_exceptions, name, getattr(exceptions, name))
    real_util = sys.modules.get("ray.util")
    if real_util is not None:
        for name in _UTIL_API:
            setattr(real_util, name, getattr(util, name))
        _stub(real_util, "ray.util", UTIL_CALLABLES)
    real_groups = sys.modules.get("ray.util.placement_group")
    if real_groups is not None:
        _stub(real_groups, "ray.util.placement_group", PLACEMENT_GROUP_CALLABLES)
    real_actor = sys.modules.get("ray.actor")
    if real_actor is not None:
        for name in ("exit_actor", "method", "ActorClass", "ActorHandle"):
            setattr(real_actor, name, getattr(actors, name))
    real_pool = sys.modules.get("ray.util.actor_pool")
    if real_pool is not None:
        real_pool.ActorPool = util.ActorPool  # type: ignore[attr-defined]
    setattr(real, "__scaler_patched__", True)  # noqa: B010 - a marker on a foreign module
    return True


def _stub(module: types.ModuleType, prefix: str, names: tuple[str, ...]) -> None:
    for name in names:
        if callable(getattr(module, name, None)):
            setattr(module, name, not_supported(f"{prefix}.{name}"))


def install_shim() -> types.ModuleType:
    """Make ``import ray`` (and ``ray.util``, ``ray.exceptions``, ``ray.actor``) give the compat API."""
    import scaler.compat.ray as compat
    from scaler.compat.ray import actors, exceptions, util

    sys.modules["ray"] = compat
    sys.modules["ray.exceptions"] = exceptions
    sys.modules["ray.actor"] = actors
    sys.modules["ray.util"] = util
    pool = types.ModuleType("ray.util.actor_pool")
    pool.ActorPool = util.ActorPool  # type: ignore[attr-defined]
    sys.modules["ray.util.actor_pool"] = pool
    return compat


class _PatchOnImport:
    """If Ray is imported after this package, patch it the moment its import finishes."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        if name != "ray":
            return None
        import importlib.util

        sys.meta_path.remove(self)
        try:
            spec = importlib.util.find_spec("ray")
        finally:
            sys.meta_path.insert(0, self)
        if spec is None or spec.loader is None:
            return None
        loader = spec.loader
        original = loader.exec_module

        def exec_then_patch(module: types.ModuleType) -> None:
            original(module)
            patch_installed_ray()

        loader.exec_module = exec_then_patch  # type: ignore[method-assign]
        return spec


def patch_when_imported() -> None:
    if "ray" not in sys.modules and not any(isinstance(f, _PatchOnImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _PatchOnImport())
