"""Capabilities: the one matching rule shared by allocation and scaling (DESIGN §3).

A capability string is ``cpu=4,gpu=1,linux,zone:us-east-1a``: a name with a number is a quantity
(consumed while a task that asks for it runs), a bare name is a label (matched, never consumed).
A worker can take a task iff it has every label asked for and, for every quantity asked for, at
least that much free.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:\-/]*$")
DEFAULT_TASK_REQUEST = "cpu=1"


class CapabilityError(ValueError):
    """A capability string that cannot be parsed; the text says which item and why."""


@dataclass(frozen=True)
class Capabilities:
    quantities: tuple[tuple[str, float], ...]
    labels: frozenset[str]

    @property
    def key(self) -> str:
        return format_capabilities(self)

    def as_dict(self) -> dict[str, float]:
        return dict(self.quantities)

    def serves(self, request: Capabilities, free: dict[str, float] | None = None) -> bool:
        """True iff a worker with these capabilities (and ``free`` left) can take ``request``."""
        if not request.labels <= self.labels:
            return False
        have = free if free is not None else dict(self.quantities)
        for name, amount in request.quantities:
            if have.get(name, 0.0) + 1e-9 < amount:
                return False
        return True


@functools.lru_cache(maxsize=4096)
def parse_capabilities(text: str) -> Capabilities:
    quantities: dict[str, float] = {}
    labels: set[str] = set()
    for raw in text.split(","):
        item = raw.strip()
        if not item:
            continue
        if "=" in item:
            name, _, value = item.partition("=")
            name = name.strip()
            try:
                amount = float(value)
            except ValueError:
                raise CapabilityError(f"capability {item!r}: {value.strip()!r} is not a number") from None
            if amount < 0 or amount != amount or amount == float("inf"):
                raise CapabilityError(f"capability {item!r}: quantity must be a finite number >= 0")
            if not _NAME.match(name):
                raise CapabilityError(f"capability {item!r}: bad name {name!r}")
            total = quantities.get(name, 0.0) + amount
            if total == float("inf"):  # a repeated name adds up: the sum must be finite too
                raise CapabilityError(f"capability {name!r}: the quantities given add up to more than a float holds")
            quantities[name] = total
        else:
            if not _NAME.match(item):
                raise CapabilityError(f"capability {item!r}: bad label name")
            labels.add(item)
    return Capabilities(tuple(sorted(quantities.items())), frozenset(labels))


PG_PREFIX = "pg."  # ``pg.<id>.<name>``: what a placement group's bundles hold on a worker (scheduler/bundles.py)
NODE_PREFIX = "node:"  # ``node:<worker name>``: the label every worker has, for work placed on it by name


def node_label(worker_name: str) -> str | None:
    """The label that places work on the worker of that name, or None if the name cannot be one."""
    label = f"{NODE_PREFIX}{worker_name}"
    return label if _NAME.match(label) and "," not in label and "=" not in label else None


DEDICATED_PREFIX = "actor."  # a worker with quantity ``actor.<id>`` hosts that actor only
GROUP_PREFIX = "actorgroup."  # ``actorgroup.<id>.<n>``: the slots of an actor's concurrency group n


def takes(worker: Capabilities, request: Capabilities) -> bool:
    """The one matching rule, plus: a dedicated worker (``actor.<id>``) takes only tasks asking for it."""
    if not worker.serves(request):
        return False
    asked = {name for name, _ in request.quantities}
    return all(name in asked for name, _ in worker.quantities if name.startswith(DEDICATED_PREFIX))


@functools.lru_cache(maxsize=1024)
def declared(caps: Capabilities) -> Capabilities:
    """A worker's capabilities as it declared them: without its name label and placement groups' names."""
    return Capabilities(
        tuple((n, a) for n, a in caps.quantities if not n.startswith(PG_PREFIX)),
        frozenset(label for label in caps.labels if not label.startswith(NODE_PREFIX)),
    )


def fit_count(worker: Capabilities, request: Capabilities) -> int:
    """How many tasks of ``request`` one worker with these capabilities runs at once (0: none)."""
    if not takes(worker, request):
        return 0
    have = dict(worker.quantities)
    counts = [int(have.get(name, 0.0) // amount) for name, amount in request.quantities if amount > 0]
    return max(1, min(counts)) if counts else 1


def format_capabilities(caps: Capabilities) -> str:
    parts = [f"{n}={_fmt(v)}" for n, v in caps.quantities]
    parts.extend(sorted(caps.labels))
    return ",".join(parts)


def canonical(text: str) -> str:
    """The canonical spelling of a capability string (sorted, numbers normalised)."""
    return _canonical(text)


@functools.lru_cache(maxsize=4096)
def _canonical(text: str) -> str:
    return format_capabilities(parse_capabilities(text))


def from_mapping(quantities: dict[str, float], labels: list[str] | tuple[str, ...] = ()) -> str:
    parts = [f"{k}={_fmt(float(v))}" for k, v in quantities.items() if v]
    parts.extend(labels)
    return canonical(",".join(parts)) if parts else ""


def _fmt(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else repr(float(v))
