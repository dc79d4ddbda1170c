"""What the runtime knows of a provider before building it, and what it hands the provider to build it.

A ``ProviderSpec`` lives in a light module of its own (``adapters/<name>/spec.py``) that imports no
backend SDK: the config check reads the provider's options Struct from it, and the factory (which may
import boto3 or paramiko) is imported only when the adapter really starts. The factory is called as
``factory(context, options)`` with a ``ProviderContext`` and the decoded options Struct.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import msgspec
from scaler.adapters.identity import Identity
from scaler.adapters.launch import LaunchBuilder


class Options(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """Base of every provider's options: an unknown or misspelt key is refused when the config loads."""


@dataclass(frozen=True)
class ProviderSpec:
    name: str
    options: type[Options]
    factory: str  # "module:attribute", imported only to build the provider
    requires: str = ""  # the pip hint when the factory's module needs an optional dependency
    # it knows each unit's shape (an instance type) and sizes a worker to it: ``workers_per_unit = "auto"``
    # is allowed, and its provider object may have ``groups(configured)`` (docs/adapters.md)
    sized_units: bool = False


@dataclass(frozen=True)
class ProviderContext:
    identity: Identity
    state_dir: Path
    scheduler: str  # the address the adapter dials (its workers dial ``launches.scheduler``)
    launches: LaunchBuilder
