"""The Ray APIs Scaler does not offer, and the stand-ins that say so.

Ray programs call many more APIs than Scaler implements. Rather than an ``AttributeError`` or,
worse, the installed Ray quietly starting a cluster of its own, each of these raises
``NotImplementedError`` naming the API: the shim through a module ``__getattr__``, the patch by
putting ``not_supported`` stand-ins over the installed Ray's callables listed here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

# Public callables of the installed ``ray`` and ``ray.util`` that the patch replaces with stand-ins.
RAY_CALLABLES = (
    "client",
    "ClientBuilder",
    "cpp_function",
    "get_gpu_ids",
    "java_actor_class",
    "java_function",
    "timeline",
)
UTIL_CALLABLES = (
    "connect",
    "deregister_serializer",
    "disconnect",
    "get_current_placement_group",
    "get_node_instance_id",
    "get_placement_group",
    "list_named_actors",
    "placement_group",
    "placement_group_table",
    "register_serializer",
    "remove_placement_group",
)
PLACEMENT_GROUP_CALLABLES = tuple(name for name in UTIL_CALLABLES if "placement_group" in name)


class UnsupportedAPIError(NotImplementedError, AttributeError):
    """A Ray API Scaler does not offer. Also an ``AttributeError``, so ``hasattr(ray, name)`` is false."""


def not_supported(api: str) -> Callable[..., Any]:
    """A stand-in for the Ray callable ``api`` that raises ``NotImplementedError`` naming it."""

    def call(*_: Any, **__: Any) -> Any:
        raise NotImplementedError(f"{api} is not supported by Scaler")

    call.__name__ = call.__qualname__ = api.rsplit(".", 1)[-1]
    call.__doc__ = f"Not supported by Scaler: calling it raises NotImplementedError naming {api}."
    return call


def module_getattr(prefix: str) -> Callable[[str], Any]:
    """A module ``__getattr__`` for the shim: public names it lacks are unsupported Ray APIs."""

    def __getattr__(name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(f"module {prefix!r} has no attribute {name!r}")
        raise UnsupportedAPIError(f"{prefix}.{name} is not supported by Scaler")

    return __getattr__
