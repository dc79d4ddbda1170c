"""Putting the compat API in place of Ray: over an installed, imported Ray, or as ``ray`` itself.

``patch_installed_ray`` aligns an already-imported ``ray`` package with the shim, name by name:
each public name of Ray's ``ray``, ``ray.util`` and ``ray.experimental`` becomes ours where we
offer it, a stand-in raising ``NotImplementedError`` naming it where we do not (a subpackage we
lack is dropped, so reaching it refuses). Ray's ``ray.exceptions``, ``ray.actor`` and
``ray.util.actor_pool`` get our classes; the other modules of ``layout.PROVIDED`` (``ray.util.queue``,
``ray.util.multiprocessing``, ``ray.experimental.tqdm_ray``, ...) are replaced by ours outright.
Nothing of Ray's is called afterwards, so no Ray process can start. ``install_shim`` makes
``import ray`` give this package when no Ray is used. ``workers_env`` tells a local cluster's
workers which of the two this driver uses, so its tasks see the same.
"""

from __future__ import annotations

import os
import sys
import types
from collections.abc import Iterable
from typing import Any

from scaler.compat.ray.unsupported import module_getattr, not_supported

SHIM_ENV = "SCALER_RAY_SHIM"  # "1": tasks on this worker get the shim even if Ray is installed
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
_PATCHED_IN_PLACE = ("ray.actor", "ray.exceptions", "ray.experimental", "ray.util", "ray.util.actor_pool")


def _compat() -> types.ModuleType:
    return sys.modules["scaler.compat.ray"]


def is_real_ray(module: Any) -> bool:
    return (
        isinstance(module, types.ModuleType)
        and not module.__name__.startswith("scaler.")
        and (getattr(module, "__file__", None) is not None)
    )


def shim_forced() -> bool:
    """Whether this process was told to use the shim even where Ray is installed."""
    return os.environ.get(SHIM_ENV, "") not in ("", "0")


def workers_env() -> dict[str, str]:
    """The environment a local cluster's workers need so their tasks see the Ray this process sees."""
    return {} if is_real_ray(sys.modules.get("ray")) else {SHIM_ENV: "1"}


def patch_installed_ray() -> bool:
    real = sys.modules.get("ray")
    if real is None or not is_real_ray(real) or getattr(real, "__scaler_patched__", False):
        return False
    from scaler.compat.ray import actors, exceptions, layout, util

    _align(real, _compat(), "ray", (*_API, *getattr(real, "__all__", ())))
    real_exceptions = sys.modules.get("ray.exceptions")
    if real_exceptions is not None:
        for name in exceptions.__all__:  # all of them, or Ray's classes would not derive from ours
            setattr(real_exceptions, name, getattr(exceptions, name))
    real_util = sys.modules.get("ray.util")
    if real_util is not None:
        _align(real_util, util, "ray.util", (*_UTIL_API, *getattr(real_util, "__all__", ())))
    real_experimental = sys.modules.get("ray.experimental")
    if real_experimental is not None:
        _align(real_experimental, layout.ours("ray.experimental"), "ray.experimental", real_experimental.__all__)
    real_actor = sys.modules.get("ray.actor")
    if real_actor is not None:
        for name in ("exit_actor", "method", "ActorClass", "ActorHandle"):
            setattr(real_actor, name, getattr(actors, name))
    real_pool = sys.modules.get("ray.util.actor_pool")
    if real_pool is not None:
        real_pool.ActorPool = util.ActorPool  # type: ignore[attr-defined]
    for ray_name in layout.PROVIDED:
        if ray_name not in _PATCHED_IN_PLACE:
            sys.modules[ray_name] = layout.ours(ray_name)
    for parent, children in layout.ATTACHED.items():
        module = sys.modules.get(parent)
        for child in children if module is not None else ():
            if f"{parent}.{child}" not in _PATCHED_IN_PLACE:
                setattr(module, child, layout.ours(f"{parent}.{child}"))
    layout.register_unsupported()
    for ray_name in ("ray", *_PATCHED_IN_PLACE):
        module = sys.modules.get(ray_name)
        if module is not None:
            setattr(module, "__scaler_patched__", True)  # noqa: B010 - a marker on a foreign module
    return True


def _align(real: types.ModuleType, ours: types.ModuleType, prefix: str, names: Iterable[str]) -> None:
    """Each public ``names`` of Ray's module ``real``: ours if we offer it, else refusing, naming it."""
    for name in dict.fromkeys(names):
        if name.startswith("_"):
            continue
        theirs = real.__dict__.get(name)  # never getattr: Ray's __getattr__ would import its subpackages
        try:
            mine = getattr(ours, name)
        except AttributeError:  # the shim's UnsupportedAPIError: not offered
            if theirs is None or isinstance(theirs, types.ModuleType):
                real.__dict__.pop(name, None)
            else:
                setattr(real, name, not_supported(f"{prefix}.{name}"))
            continue
        if not (isinstance(mine, types.ModuleType) and isinstance(theirs, types.ModuleType)):
            setattr(real, name, mine)  # a module we offer is patched in place or replaced above
    real.__getattr__ = module_getattr(prefix)  # type: ignore[method-assign]


def install_shim() -> types.ModuleType:
    """Make ``import ray`` (and every module of ``layout.PROVIDED``) give the compat API."""
    import scaler.compat.ray as compat
    from scaler.compat.ray import layout

    layout.register()
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
