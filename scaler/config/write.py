"""A deployment as TOML text, so a ``Config`` made in code runs through the same file path as a user's.

``Cluster(SimpleCluster(...))`` and ``Cluster(config=..., provider=...)`` change a loaded deployment
(its groups, its scheduler address) and hand the result to ``scaler_cluster --config``: the one
way a deployment starts, checked by the one loader. Only what the schema holds is written: scalars,
lists, tables (nested tables inline) and arrays of tables (``[[adapter]]``, ``[[adapter.group]]``).
"""

from __future__ import annotations

import json
import math
from typing import Any

import msgspec

from scaler.config.schema import Config


def value(item: Any) -> str:
    if isinstance(item, bool):
        return "true" if item else "false"
    if isinstance(item, int):
        return str(item)
    if isinstance(item, float):
        if not math.isfinite(item):
            raise ValueError(f"{item!r} has no TOML spelling in a deployment")
        return repr(item)
    if isinstance(item, str):
        return json.dumps(item)  # a JSON string is a TOML basic string
    if isinstance(item, (list, tuple)):
        return "[" + ", ".join(value(i) for i in item) + "]"
    if isinstance(item, dict):
        return "{ " + ", ".join(f"{json.dumps(str(k))} = {value(v)}" for k, v in item.items()) + " }"
    raise TypeError(f"cannot write {type(item).__name__} into a deployment file")


def _table(header: str, fields: dict[str, Any]) -> list[str]:
    lines = [header] if header else []
    lines += [f"{key} = {value(item)}" for key, item in fields.items() if item is not None]
    return lines


def dumps(config: Config) -> str:
    """``config`` as a deployment file that ``load_config`` reads back to an equal ``Config``."""
    data = msgspec.to_builtins(config)
    adapters = data.pop("adapter", [])
    scheduler, scaling = data.pop("scheduler", {}), data.pop("scaling", {})
    lines = _table("", data)
    lines += ["", *_table("[scheduler]", scheduler), "", *_table("[scaling]", scaling)]
    for adapter in adapters:
        groups = adapter.pop("group", [])
        lines += ["", *_table("[[adapter]]", adapter)]
        for group in groups:
            lines += ["", *_table("[[adapter.group]]", group)]
    return "\n".join(lines) + "\n"
