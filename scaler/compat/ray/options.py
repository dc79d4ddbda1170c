"""Ray's ``@ray.remote``/``.options`` arguments, checked and turned into Scaler task options.

``num_cpus``, ``num_gpus``, ``memory`` and ``resources={...}`` become one capability request
(``cpu``, ``gpu``, ``memory`` and the resource names; Ray's ``CPU``/``GPU`` keys map to ours).
Options Scaler cannot honour raise ``NotImplementedError`` naming the option.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from scaler.compat.ray.namespaces import checked as checked_namespace
from scaler.compat.ray.scheduling_strategies import refusal as strategy_refusal
from scaler.utility.capabilities import from_mapping

PLACEMENT_OPTIONS = ("placement_group", "placement_group_bundle_index", "placement_group_capture_child_tasks")
TASK_OPTIONS = {
    "num_cpus",
    "num_gpus",
    "memory",
    "resources",
    "num_returns",
    "max_retries",
    "retry_exceptions",
    "name",
    "runtime_env",
    "scheduling_strategy",
    "max_calls",
    "_metadata",
    *PLACEMENT_OPTIONS,
}
ACTOR_OPTIONS = {
    "num_cpus",
    "num_gpus",
    "memory",
    "resources",
    "max_restarts",
    "max_task_retries",
    "name",
    "namespace",
    "get_if_exists",
    "lifetime",
    "runtime_env",
    "scheduling_strategy",
    "max_concurrency",
    "concurrency_groups",
    "allow_out_of_order_execution",
    "max_pending_calls",
    "_metadata",
    *PLACEMENT_OPTIONS,
}
SCALER_NAMES = {"CPU": "cpu", "GPU": "gpu"}  # Ray's resource names that differ from our capability names
RAY_NAMES = {ours: ray for ray, ours in SCALER_NAMES.items()}


def scaler_name(ray_name: str) -> str:
    """The capability name for a Ray resource name (``CPU`` is ``cpu``; others are the same)."""
    return SCALER_NAMES.get(ray_name, ray_name)


def ray_name(name: str) -> str:
    """The Ray resource name for a capability name (``cpu`` is ``CPU``; others are the same)."""
    return RAY_NAMES.get(name, name)


def check(options: dict[str, Any], allowed: set[str], where: str) -> dict[str, Any]:
    unknown = set(options) - allowed
    if unknown:
        raise NotImplementedError(f"{where} option(s) {', '.join(sorted(unknown))} are not supported by Scaler")
    why = strategy_refusal(options.get("scheduling_strategy"), where)
    if why:
        raise NotImplementedError(why)
    lifetime = options.get("lifetime")
    if lifetime not in (None, "detached", "non_detached"):
        raise ValueError(f"{where}: lifetime must be 'detached' or 'non_detached', not {lifetime!r}")
    if options.get("namespace") is not None:
        checked_namespace(options["namespace"], where)
    runtime_env_vars(options.get("runtime_env"), where)
    return options


def capability_string(options: dict[str, Any], default_cpus: float) -> str:
    quantities: dict[str, float] = {}
    cpus = options.get("num_cpus")
    quantities["cpu"] = float(default_cpus if cpus is None else cpus)
    if options.get("num_gpus"):
        quantities["gpu"] = float(options["num_gpus"])
    if options.get("memory"):
        quantities["memory"] = float(options["memory"])
    for name, amount in (options.get("resources") or {}).items():
        if name in ("CPU", "GPU"):
            raise ValueError(f"use num_cpus/num_gpus instead of resources={{{name!r}: ...}} (as in Ray)")
        quantities[scaler_name(name)] = quantities.get(scaler_name(name), 0.0) + float(amount)
    for name, amount in quantities.items():
        if amount < 0:
            raise ValueError(f"resource {name} must be >= 0, got {amount}")
    return from_mapping(quantities)


def runtime_env_vars(runtime_env: Any, where: str) -> dict[str, str]:
    if not runtime_env:
        return {}
    env = dict(runtime_env)
    unsupported = set(env) - {"env_vars"}
    if unsupported:
        raise NotImplementedError(
            f"{where}: runtime_env keys {', '.join(sorted(unsupported))} are not supported by Scaler (only env_vars)"
        )
    variables = env.get("env_vars") or {}
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in variables.items()):
        raise TypeError(f"{where}: runtime_env env_vars must map str to str")
    return dict(variables)


@contextmanager
def env_applied(env_vars: dict[str, str]) -> Iterator[None]:
    """``runtime_env`` variables set in this process for the block, and the old values put back."""
    saved = {k: os.environ.get(k) for k in env_vars}
    os.environ.update(env_vars)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
