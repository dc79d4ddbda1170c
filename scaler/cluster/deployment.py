"""The deployment an ephemeral cluster runs, and the check that its units are gone afterwards.

``effective`` turns what ``Cluster``/``scaler run`` were given (a deployment file, a provider name,
a ``ClusterConfig`` shape, or nothing) into one ``Config``: a cluster id of its own, a free port for
a loopback scheduler, and the shape's scaling groups in place of the adapter's groups, by position
(scaling group 0 takes the place of the file's first group, keeping its name, so provider options
that name groups, such as EC2 launch settings or SSH hosts, still apply). Without a file the
cluster is local. ``ensure_gone`` asks each provider, from this process, for what it still runs.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import msgspec

from scaler.cluster.nodes import ClusterConfig
from scaler.config import load_config
from scaler.config.schema import AdapterSection, Config, GroupSection, ScalingSection, SchedulerSection
from scaler.utility.net import parse_tcp

LOOPBACK = ("127.", "localhost", "::1")


def effective(shape: ClusterConfig | None, path: str | Path | None, provider: str | None, token: str) -> Config:
    if path is None:
        if provider not in (None, "local"):
            raise ValueError(
                f"provider {provider!r} needs a deployment file: Cluster(config='configs/{provider}.toml')"
            )
        return _local(shape, token)
    config = load_config(path)
    adapters = [a for a in config.adapter if provider is None or a.provider == provider]
    if not adapters:
        named = f"no [[adapter]] with provider = {provider!r}" if provider else "no [[adapter]]"
        raise ValueError(f"{path}: {named}; an ephemeral cluster needs workers from an adapter")
    if shape is not None:
        if len(adapters) != 1:
            raise ValueError(
                f"{path}: a ClusterConfig shapes one adapter; name it with provider= (found {len(adapters)})"
            )
        adapters = [_shaped(adapters[0], shape, path)]
    cluster_id = f"{config.cluster_id}-{token}" if config.cluster_id else token
    scheduler = msgspec.structs.replace(config.scheduler, address=_free_port(config.scheduler.address))
    return msgspec.structs.replace(config, cluster_id=cluster_id, scheduler=scheduler, adapter=adapters)


def _local(shape: ClusterConfig | None, token: str) -> Config:
    if shape is not None:
        groups = shape.groups()
    else:
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        groups = [GroupSection(name="cpu", capabilities="cpu=1", min_units=cpus, max_units=cpus)]
    adapter = AdapterSection(provider="local", name="local", reconcile_interval=0.5, group=groups)
    scaling = ScalingSection(idle_timeout=30.0)
    return Config(
        cluster_id=token, scheduler=SchedulerSection(address="tcp://127.0.0.1:0"), scaling=scaling, adapter=[adapter]
    )


def _shaped(adapter: AdapterSection, shape: ClusterConfig, path: str | Path) -> AdapterSection:
    wanted = shape.groups()
    if len(wanted) > len(adapter.group):
        raise ValueError(
            f"{path}: adapter {adapter.name or adapter.provider!r} has {len(adapter.group)} group(s) for "
            f"{len(wanted)} scaling group(s): add [[adapter.group]]s (their provider settings apply by position)"
        )
    groups = [
        msgspec.structs.replace(
            mine,
            capabilities=given.capabilities,
            workers_per_unit=1,
            min_units=given.min_units,
            max_units=given.max_units,
        )
        for mine, given in zip(adapter.group, wanted, strict=False)
    ]
    options = adapter.options
    if adapter.provider == "ec2" and isinstance(options.get("groups"), dict):  # a node config picks its type
        picked = {name: {**values, "pick": "smallest-fitting"} for name, values in options["groups"].items()}
        options = {**options, "groups": picked}
    return msgspec.structs.replace(adapter, group=groups, options=options)


def _free_port(address: str) -> str:
    host, _ = parse_tcp(address)
    return f"tcp://{host}:0" if host.startswith(LOOPBACK) else address


def minimum_workers(config: Config) -> dict[tuple[str, str], int]:
    """(adapter, group) -> the workers that group must have before the block starts."""
    return {(a.name or a.provider, g.name): g.min_units * g.workers() for a in config.adapter for g in a.group}


def ensure_gone(config: Config, address: str, deadline: float) -> list[str]:
    """Lists every adapter's provider until none lists a unit of this cluster (terminating what it still
    lists, once a second) or ``deadline`` passes; returns the unit ids still listed."""
    from scaler.adapters.cli import build_runners
    from scaler.adapters.units import ACTIVE

    runners = build_runners(config, None, address)

    async def sweep() -> list[str]:
        while True:
            left: list[str] = []
            for runner in runners:
                listed = await runner.calls.list_units()
                mine = [u.unit_id for u in listed if u.state in ACTIVE]
                if mine:
                    await runner.calls.terminate(mine)
                left += mine
            if not left or time.monotonic() >= deadline:
                return left
            await asyncio.sleep(1.0)

    try:
        return asyncio.run(sweep())
    finally:
        for runner in runners:
            runner.calls.close()


def main(argv: list[str] | None = None) -> None:
    """``python -m scaler.cluster.deployment --config F --address A --timeout S``: prints, as JSON, the unit
    ids the file's providers still list after ``S`` seconds (run on a ``[head]`` by ``Cluster``'s teardown)."""
    import argparse
    import json

    p = argparse.ArgumentParser(prog="python -m scaler.cluster.deployment")
    p.add_argument("--config", required=True, type=Path)
    p.add_argument("--address", required=True)
    p.add_argument("--timeout", type=float, default=60.0)
    a = p.parse_args(argv)
    print(json.dumps(ensure_gone(load_config(a.config), a.address, time.monotonic() + a.timeout)))


if __name__ == "__main__":
    main()
