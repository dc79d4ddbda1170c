"""Providers by name: ``ProviderSpec`` objects from the ``scaler.adapters`` entry-point group, imported lazily.

A third party adds a provider by shipping a package with an entry point
``[project.entry-points."scaler.adapters"] myname = "mypkg.spec:SPEC"`` (a ``ProviderSpec`` in a
module that imports no backend SDK); nothing in core changes. The built-in providers are listed
here, once. A missing optional dependency is reported with the exact ``pip install`` hint.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any

from scaler.adapters.spec import ProviderSpec

BUILTIN: dict[str, str] = {
    "local": "scaler.adapters.local.spec:SPEC",
    "fake": "scaler.adapters.fake.spec:SPEC",
    "ec2": "scaler.adapters.ec2.spec:SPEC",
    "ssh": "scaler.adapters.ssh.spec:SPEC",
    "symphony": "scaler.adapters.symphony.spec:SPEC",
}


class UnknownProviderError(KeyError):
    def __str__(self) -> str:
        return str(self.args[0])


def known() -> dict[str, str]:
    """Every provider name and the dotted path of its spec."""
    found = dict(BUILTIN)
    for entry in entry_points(group="scaler.adapters"):
        found[entry.name] = entry.value
    return found


def _import(name: str, path: str, hint: str) -> Any:
    module_name, _, attribute = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if (exc.name and module_name.startswith(exc.name + ".")) or exc.name == module_name:
            raise UnknownProviderError(f"provider {name!r} is not available in this version of Scaler") from exc
        raise ImportError(f"provider {name!r} needs {exc.name}: {hint or 'install its package'}") from exc
    return getattr(module, attribute)


def spec(name: str) -> ProviderSpec:
    """The spec of provider ``name`` (no backend SDK imported); raises with the known names."""
    paths = known()
    if name not in paths:
        raise UnknownProviderError(f"unknown provider {name!r}; known providers: {', '.join(sorted(paths))}")
    found = _import(name, paths[name], "")
    if not isinstance(found, ProviderSpec):
        raise UnknownProviderError(f"provider {name!r}: {paths[name]} is not a ProviderSpec")
    return found


def load(name: str) -> tuple[ProviderSpec, Callable[..., Any]]:
    """The spec and the factory of provider ``name``; raises with the known names, or the pip hint."""
    found = spec(name)
    factory: Callable[..., Any] = _import(name, found.factory, found.requires)
    return found, factory
