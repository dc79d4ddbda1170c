"""A Ray-compatible API on Scaler.

``from scaler.compat import ray`` is this module: the Ray API, with no Ray installed. Imported
after ``import ray`` (``import ray; import scaler.compat.ray``), it also *patches* the installed
Ray module, replacing its API with this one before Ray can start anything, so an unchanged Ray
program runs on Scaler. ``python -m scaler.compat.ray my_program.py [--address tcp://...]`` runs a
Ray program this way. ``layout`` lists the ``ray`` modules offered (``ray.util.queue``,
``ray.util.multiprocessing``, ``ray.experimental.tqdm_ray``, ...), the same on the driver and in
tasks. What is not supported raises ``NotImplementedError`` naming the API: Ray's public callables
we lack are stand-ins that refuse when called, any other public name of this module refuses on
access (an ``AttributeError`` too, so ``hasattr`` stays false).
``from scaler.compat.ray import scaler_init`` (OpenGRIS Scaler's entry point, not a Ray name, so
never set on a patched Ray) picks a running scheduler or shapes the local cluster before any Ray call.
"""

from __future__ import annotations

from typing import Any

from scaler.compat.ray import actors as actor
from scaler.compat.ray import exceptions, util
from scaler.compat.ray.actors import ActorClass, ActorHandle, get_actor, kill, method
from scaler.compat.ray.generators import DynamicObjectRefGenerator, ObjectRefGenerator
from scaler.compat.ray.placement_groups import PlacementGroupID
from scaler.compat.ray.refs import ObjectRef, cancel, get, put, wait
from scaler.compat.ray.remote_function import RemoteFunction
from scaler.compat.ray.resources import available_resources, cluster_resources, nodes
from scaler.compat.ray.runtime_context import get_runtime_context
from scaler.compat.ray.session import init, is_initialized, scaler_init, shutdown
from scaler.compat.ray.unsupported import RAY_CALLABLES, module_getattr, stand_ins


def remote(*args: Any, **options: Any) -> Any:
    """``@ray.remote`` / ``@ray.remote(num_cpus=..., ...)`` on a function or a class."""
    if len(args) == 1 and not options and callable(args[0]):
        return _make_remote(args[0], {})
    if args:
        raise TypeError("@ray.remote takes either one function/class or keyword options")

    def decorate(target: Any) -> Any:
        return _make_remote(target, options)

    return decorate


def _make_remote(target: Any, options: dict[str, Any]) -> Any:
    if isinstance(target, type):
        return ActorClass(target, options)
    return RemoteFunction(target, options)


__getattr__ = module_getattr("ray")  # data, workflow, ...: NotImplementedError
globals().update(stand_ins("ray", RAY_CALLABLES))  # get_gpu_ids, timeline, JobID, ...: refuse when called
ObjectID = ObjectRef  # Ray's older name for the same class
SCRIPT_MODE = 0  # the worker modes Ray exports: a driver's, and a task's
WORKER_MODE = 1

__version__ = "2.60.0-scaler"
__all__ = [
    "SCRIPT_MODE",
    "WORKER_MODE",
    "ActorClass",
    "ActorHandle",
    "DynamicObjectRefGenerator",
    "ObjectID",
    "ObjectRef",
    "ObjectRefGenerator",
    "PlacementGroupID",
    "RemoteFunction",
    "actor",
    "available_resources",
    "cancel",
    "cluster_resources",
    "exceptions",
    "get",
    "get_actor",
    "get_runtime_context",
    "init",
    "is_initialized",
    "kill",
    "method",
    "nodes",
    "put",
    "remote",
    "scaler_init",
    "shutdown",
    "util",
    "wait",
]

from scaler.compat.ray import layout  # noqa: E402
from scaler.compat.ray.patch import patch_installed_ray, patch_when_imported  # noqa: E402

layout.attach()

if not patch_installed_ray():
    patch_when_imported()
