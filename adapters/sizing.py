"""One rule for sizing a group's workers to the machines its units run on (EC2 instance types, SSH hosts).

A unit's machine offers quantities (``cpu``, ``memory`` in bytes, ``gpu``); a group may run on
several machines of different sizes, and the scaling policy plans with one shape per group, so each
worker gets the *smallest* machine's quantities divided among the unit's workers, never more than any
unit has. Quantities and labels given in the group's configured capabilities are merged in and win.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

from scaler.utility.capabilities import from_mapping, parse_capabilities

SIZED = ("cpu", "memory", "gpu")


def worker_share(
    machines: Sequence[Mapping[str, float]], workers: int, configured: str, labels: Iterable[str] = ()
) -> str:
    """Each of a unit's ``workers`` workers' capabilities on the smallest of ``machines``, then ``configured``."""
    share = max(workers, 1)
    quantities: dict[str, float] = {}
    for name in SIZED:
        smallest = min(float(m.get(name, 0.0)) for m in machines)
        quantities[name] = float(math.floor(smallest / share)) if name == "memory" else smallest / share
    given = parse_capabilities(configured)
    quantities.update(given.quantities)
    return from_mapping(quantities, sorted(given.labels | set(labels)))
