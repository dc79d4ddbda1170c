"""Running the adapters a deployment file declares: ``scaler_worker_adapter_<provider> --config F``.

Each adapter gets its identity (the cluster id and its name), takes its lock (a second process for
the same cluster and adapter is refused, naming the first), and is built from its provider's spec
with typed options and the one ``LaunchBuilder`` its workers are launched by.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path

import msgspec
from scaler.adapters.identity import Identity, cluster_id
from scaler.adapters.launch import LaunchBuilder
from scaler.adapters.lock import AdapterLock, AdapterLockedError, acquire
from scaler.adapters.provider import WorkerGroup
from scaler.adapters.registry import load
from scaler.adapters.runner import AdapterRunner, RunnerConfig
from scaler.adapters.spec import ProviderContext, ProviderSpec

from scaler.config import AdapterSection, Config, ConfigError, GroupSection, load_config
from scaler.utility.logs import setup_logging

log = logging.getLogger(__name__)


def sections(config: Config, provider: str | None) -> list[AdapterSection]:
    return [s for s in config.adapter if provider is None or s.provider == provider]


def identity_of(config: Config, section: AdapterSection) -> Identity:
    generated = cluster_id(config.cluster_id, state_dir_of(section), config.scheduler.address)
    return Identity(generated, section.name or section.provider)


def state_dir_of(section: AdapterSection) -> Path:
    return Path(section.state_dir).expanduser()


def lock_adapters(config: Config, provider: str | None) -> list[AdapterLock]:
    """The locks of the adapters to run; ``AdapterLockedError`` if another process runs one of them."""
    locks: list[AdapterLock] = []
    try:
        for section in sections(config, provider):
            locks.append(acquire(state_dir_of(section), identity_of(config, section)))
    except AdapterLockedError:
        for lock in locks:
            lock.release()
        raise
    return locks


def capabilities(group: GroupSection, spec: ProviderSpec) -> str:
    """The group's configured capabilities; left empty for a provider that sizes its workers to its units
    (it fills in the unit's shape, or the runner ``cpu=1``), else ``cpu=1`` when none are given."""
    return group.capabilities if spec.sized_units else group.worker_capabilities()


def build_runners(config: Config, provider: str | None, scheduler: str | None) -> list[AdapterRunner]:
    address = scheduler or config.scheduler.address
    keys = Path(config.scheduler.curve_keys) if config.scheduler.curve_keys else None
    runners = []
    for section in sections(config, provider):
        identity = identity_of(config, section)
        spec, factory = load(section.provider)
        groups = tuple(
            WorkerGroup(g.name, capabilities(g, spec), g.workers(), g.min_units, g.max_units, g.priority, g.cost)
            for g in section.group
        )
        launches = LaunchBuilder(identity, section.worker_scheduler_address or address, keys)
        context = ProviderContext(identity, state_dir_of(section), address, launches)
        made = factory(context, msgspec.convert(section.options, spec.options))
        runner_config = RunnerConfig(
            identity.adapter,
            address,
            groups,
            reconcile_interval=section.reconcile_interval,
            boot_timeout=section.boot_timeout,
            orphans=section.orphans,
            backoff_base=section.backoff_base,
            backoff_max=section.backoff_max,
            death_timeout=section.death_timeout,
            curve_keys=keys,
            call_timeout=section.call_timeout,
            max_threads=section.max_threads,
            peer_timeout=config.scheduler.peer_timeout,
            max_cost_per_hour=section.max_cost_per_hour,
        )
        runners.append(AdapterRunner(made, runner_config))
    return runners


def _stop_all(runners: list[AdapterRunner]) -> None:
    for runner in runners:
        runner.stop()


async def run_all(runners: list[AdapterRunner]) -> None:
    loop = asyncio.get_running_loop()
    # SIGHUP too: a cluster started over SSH in a terminal (a Cluster's head) ends its units when the
    # session that started it drops, as when its caller was killed
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        loop.add_signal_handler(sig, _stop_all, runners)
    await asyncio.gather(*(r.run() for r in runners))


def main_for(provider: str, argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog=f"scaler_worker_adapter_{provider}",
        description=f"Run the {provider} worker adapters of a deployment file.",
    )
    parser.add_argument("--config", required=True, type=Path, help="the deployment TOML file")
    parser.add_argument("--scheduler", default=None, help="override [scheduler].address")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    setup_logging(f"adapter-{provider}", args.log_level)
    try:
        config = load_config(args.config)
        locks = lock_adapters(config, provider)
        runners = build_runners(config, provider, args.scheduler)
    except (ConfigError, ValueError, ImportError, KeyError, AdapterLockedError, OSError) as exc:
        print(f"scaler_worker_adapter_{provider}: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    if not runners:
        print(
            f"scaler_worker_adapter_{provider}: {args.config} declares no [[adapter]] with provider = {provider!r}",
            file=sys.stderr,
        )
        raise SystemExit(2)
    asyncio.run(run_all(runners))
    for lock in locks:
        lock.release()
    code = max(runner.exit_code for runner in runners)
    if code:
        raise SystemExit(code)
