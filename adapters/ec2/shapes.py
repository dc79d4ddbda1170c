"""Worker capabilities from instance shapes: ``DescribeInstanceTypes`` answers vCPUs, memory and GPUs.

A group's worker advertises its instance's shape divided among the unit's workers: ``cpu`` (vCPUs),
``memory`` in bytes (the unit Ray's ``memory=`` option asks in, and what a local ``ray.init`` worker
advertises) and ``gpu`` when the type has any, plus the label ``instance_type:<type>`` when the group
has one type. A group of several types gets the smallest of each quantity over them, so whichever
cell of the ladder a unit lands in, its workers serve what scaling planned for. Capabilities given in
the group's config are merged in: their quantities override the shape's, their labels are added.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from scaler.adapters.errors import ConfigurationError
from scaler.adapters.sizing import worker_share

from scaler.utility.capabilities import parse_capabilities

BATCH = 100  # instance types per DescribeInstanceTypes call (AWS's limit)
MIB = 1024 * 1024


@dataclass(frozen=True)
class Shape:
    instance_type: str
    vcpus: int
    memory_mib: int
    gpus: int


def shape_of(answer: dict[str, Any]) -> Shape:
    """One ``InstanceTypes`` entry of a ``DescribeInstanceTypes`` answer as a ``Shape``."""
    gpus = sum(int(gpu.get("Count", 0)) for gpu in answer.get("GpuInfo", {}).get("Gpus", []))
    vcpus = int(answer.get("VCpuInfo", {}).get("DefaultVCpus", 0))
    memory = int(answer.get("MemoryInfo", {}).get("SizeInMiB", 0))
    return Shape(str(answer["InstanceType"]), vcpus, memory, gpus)


def describe(client: Any, instance_types: Iterable[str]) -> dict[str, Shape]:
    """The shapes of ``instance_types`` (a blocking call: run it where the runner runs provider calls);
    a type EC2 does not know is a ``ConfigurationError`` naming it."""
    wanted = sorted(set(instance_types))
    found: dict[str, Shape] = {}
    for start in range(0, len(wanted), BATCH):
        pages = client.get_paginator("describe_instance_types").paginate(InstanceTypes=wanted[start : start + BATCH])
        for page in pages:
            found.update((s.instance_type, s) for s in map(shape_of, page.get("InstanceTypes", [])))
    if missing := [t for t in wanted if t not in found]:
        raise ConfigurationError(f"instance type(s) {', '.join(missing)} unknown to EC2 in this region")
    return found


def capabilities(shapes: list[Shape], workers: int, configured: str) -> str:
    """Each of a unit's ``workers`` workers' capabilities: the smallest shape's share, then ``configured``."""
    machines = [{"cpu": s.vcpus, "memory": s.memory_mib * MIB, "gpu": s.gpus} for s in shapes]
    label = {f"instance_type:{shapes[0].instance_type}"} if len(shapes) == 1 else set()
    return worker_share(machines, workers, configured, label)


def smallest_fitting(shapes: list[Shape], workers: int, configured: str) -> list[Shape]:
    """The shapes that hold ``workers`` workers of the quantities ``configured`` asks (``cpu``, ``memory``
    in bytes, ``gpu``), smallest first: fewest vCPUs, then least memory, then fewest GPUs."""
    asked = parse_capabilities(configured).as_dict()
    share = max(workers, 1)

    def fits(shape: Shape) -> bool:
        have = {"cpu": float(shape.vcpus), "memory": float(shape.memory_mib * MIB), "gpu": float(shape.gpus)}
        return all(asked.get(name, 0.0) * share <= have[name] + 1e-9 for name in have)

    return sorted((s for s in shapes if fits(s)), key=lambda s: (s.vcpus, s.memory_mib, s.gpus))
