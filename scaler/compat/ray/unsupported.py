"""The Ray APIs Scaler does not offer, and the stand-ins that say so.

Ray programs call many more APIs than Scaler implements. Rather than an ``AttributeError`` or,
worse, the installed Ray quietly starting a cluster of its own, each of these raises
``NotImplementedError`` naming the API. Public callables of Ray 2.60's ``ray`` and ``ray.util``
that Scaler lacks are ``not_supported`` stand-ins (so ``from ray import timeline`` works and the
call refuses); any other public name of a compat module raises on access through the module's
``__getattr__``; Ray's subpackages that Scaler lacks (``ray.data``, ...) are ``UnsupportedModule``
stand-ins, whose every public attribute refuses. The patch puts the same over an installed Ray.
"""

from __future__ import annotations

import types
from collections.abc import Callable
from typing import Any

# Public callables of Ray's ``ray`` and ``ray.util`` that Scaler lacks: stand-ins on both paths.
RAY_CALLABLES = (
    "ActorClassID",
    "ActorID",
    "ClientBuilder",
    "FunctionID",
    "JobID",
    "Language",
    "LoggingConfig",
    "NodeID",
    "TaskID",
    "UniqueID",
    "WorkerID",
    "client",
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
    "get_node_instance_id",
    "inspect_serializability",
    "list_named_actors",
    "register_serializer",
)
# Ray's subpackages Scaler lacks: ``import`` gives an ``UnsupportedModule``; attribute access on the
# parent (``ray.data``) raises, as for any other unsupported name.
UNSUPPORTED_MODULES = (
    "ray.autoscaler",
    "ray.data",
    "ray.internal",
    "ray.train",
    "ray.tune",
    "ray.serve",
    "ray.widgets",
    "ray.workflow",
    "ray.util.accelerators",
    "ray.util.collective",
    "ray.util.debugpy",
    "ray.util.iter",
    "ray.util.rpdb",
)


class UnsupportedAPIError(NotImplementedError, AttributeError):
    """A Ray API Scaler does not offer. Also an ``AttributeError``, so ``hasattr(ray, name)`` is false."""


def not_supported(api: str) -> Callable[..., Any]:
    """A stand-in for the Ray callable ``api`` that raises ``NotImplementedError`` naming it."""

    def call(*_: Any, **__: Any) -> Any:
        raise NotImplementedError(f"{api} is not supported by Scaler")

    call.__name__ = call.__qualname__ = api.rsplit(".", 1)[-1]
    call.__doc__ = f"Not supported by Scaler: calling it raises NotImplementedError naming {api}."
    call.__scaler_unsupported__ = api  # type: ignore[attr-defined]
    return call


def stand_ins(prefix: str, names: tuple[str, ...]) -> dict[str, Callable[..., Any]]:
    """``not_supported`` stand-ins for ``prefix.name``, by name."""
    return {name: not_supported(f"{prefix}.{name}") for name in names}


def module_getattr(prefix: str) -> Callable[[str], Any]:
    """A module ``__getattr__`` for the shim: public names it lacks are unsupported Ray APIs."""

    def __getattr__(name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(f"module {prefix!r} has no attribute {name!r}")
        raise UnsupportedAPIError(f"{prefix}.{name} is not supported by Scaler")

    return __getattr__


class UnsupportedModule(types.ModuleType):
    """A Ray module Scaler does not offer: importing it works, any public attribute raises
    ``NotImplementedError`` naming it (not an ``AttributeError``, so ``from ray.data import
    Dataset`` says so instead of a bare ``ImportError``)."""

    __scaler_unsupported__ = True

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(f"module {self.__name__!r} has no attribute {name!r}")
        raise NotImplementedError(f"{self.__name__}.{name} is not supported by Scaler ({self.__name__} is not)")
