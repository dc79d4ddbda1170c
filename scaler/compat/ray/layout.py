"""Which ``ray`` modules Scaler provides, and which module of this package stands for each.

One table serves both paths, so the driver and every task see the same modules: the shim makes
``import ray.util.queue`` (and the rest) give these modules where no Ray is used, and the patch
puts them in place of an installed Ray's own. ``attach`` hangs the submodules on their parents,
so ``ray.util.queue`` is there after ``import ray.util.queue`` even though the import system finds
the module already in ``sys.modules`` and never sets the attribute itself.
"""

from __future__ import annotations

import importlib
import sys
import types

from scaler.compat.ray.unsupported import UNSUPPORTED_MODULES, UnsupportedModule

DAG_NODE_MODULES = ("dag_node", "input_node", "function_node", "class_node", "output_node")
# Ray's module name -> ours. "ray" itself is this package.
PROVIDED = {
    "ray.actor": "scaler.compat.ray.actors",
    "ray.dag": "scaler.compat.ray.dag",
    "ray.exceptions": "scaler.compat.ray.exceptions",
    "ray.experimental": "scaler.compat.ray.experimental",
    "ray.experimental.tqdm_ray": "scaler.compat.ray.tqdm_ray",
    "ray.runtime_context": "scaler.compat.ray.runtime_context",
    "ray.util": "scaler.compat.ray.util",
    "ray.util.actor_pool": "scaler.compat.ray.actor_pool",
    "ray.util.multiprocessing": "scaler.compat.ray.util_multiprocessing",
    "ray.util.placement_group": "scaler.compat.ray.placement_groups",
    "ray.util.queue": "scaler.compat.ray.util_queue",
    "ray.util.scheduling_strategies": "scaler.compat.ray.scheduling_strategies",
}
# ``from ray.dag.input_node import InputNode`` and the like: one module stands for ray.dag's node modules.
PROVIDED.update({f"ray.dag.{name}": "scaler.compat.ray.dag" for name in DAG_NODE_MODULES})
# A patched Ray's own ``shutdown`` (still registered with atexit) imports this one's function.
PROVIDED["ray.dag.compiled_dag_node"] = "scaler.compat.ray.dag"
# Submodules that are attributes of their parent (``ray.util.placement_group`` is the function).
ATTACHED = {
    "ray.util": ("actor_pool", "multiprocessing", "queue", "scheduling_strategies"),
    "ray.experimental": ("tqdm_ray",),
    "ray": ("actor", "dag", "exceptions", "experimental", "runtime_context", "util"),
    "ray.dag": DAG_NODE_MODULES,
}


def ours(ray_name: str) -> types.ModuleType:
    """Our module for Ray's module ``ray_name`` (``ray`` itself included)."""
    return importlib.import_module(PROVIDED.get(ray_name, "scaler.compat.ray"))


def attach() -> None:
    """Hang our submodules on our parent modules under Ray's names."""
    for parent, children in ATTACHED.items():
        for child in children:
            setattr(ours(parent), child, ours(f"{parent}.{child}"))


def register() -> None:
    """Make every Ray module name Scaler knows give our module, or a refusing stand-in."""
    sys.modules["ray"] = ours("ray")
    for ray_name in PROVIDED:
        sys.modules[ray_name] = ours(ray_name)
    register_unsupported()
    for ray_name in UNSUPPORTED_MODULES:  # ``import ray.data as d`` looks for "<parent's __name__>.data"
        parent, _, child = ray_name.rpartition(".")
        sys.modules[f"{ours(parent).__name__}.{child}"] = sys.modules[ray_name]


def register_unsupported() -> None:
    for ray_name in UNSUPPORTED_MODULES:
        if not isinstance(sys.modules.get(ray_name), UnsupportedModule):
            sys.modules[ray_name] = UnsupportedModule(ray_name, "Not supported by Scaler.")
