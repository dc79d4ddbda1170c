"""Providers by name: dotted paths from the ``scaler.adapters`` entry-point group, imported lazily.

A third party adds a provider by shipping a package with an entry point
``[project.entry-points."scaler.adapters"] myname = "mypkg.provider:make_provider"``; nothing in
core changes. A missing optional dependency is reported with the exact ``pip install`` hint.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any

# name -> (dotted factory path, pip hint for its optional dependencies)
BUILTIN: dict[str, tuple[str, str]] = {
    "local": ("scaler.adapters.local.provider:make_provider", ""),
    "fake": ("scaler.adapters.fake.provider:make_provider", ""),
}


class UnknownProviderError(KeyError):
    def __str__(self) -> str:
        return str(self.args[0])


def known() -> dict[str, str]:
    found = {name: path for name, (path, _) in BUILTIN.items()}
    for entry in entry_points(group="scaler.adapters"):
        found[entry.name] = entry.value
    return found


def load(name: str) -> Callable[..., Any]:
    """The factory of provider ``name``; raises with the known names, or the pip hint if not installed."""
    paths = known()
    if name not in paths:
        raise UnknownProviderError(f"unknown provider {name!r}; known providers: {', '.join(sorted(paths))}")
    module_name, _, attribute = paths[name].partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        hint = BUILTIN.get(name, ("", ""))[1]
        if (exc.name and module_name.startswith(exc.name + ".")) or exc.name == module_name:
            raise UnknownProviderError(f"provider {name!r} is not available in this version of Scaler") from exc
        raise ImportError(f"provider {name!r} needs {exc.name}: {hint or 'install its package'}") from exc
    factory: Callable[..., Any] = getattr(module, attribute)
    return factory
