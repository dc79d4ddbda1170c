"""Running the adapters a deployment file declares: ``scaler_worker_adapter_<provider> --config F``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path

from scaler.adapters.provider import WorkerGroup
from scaler.adapters.registry import load
from scaler.adapters.runner import AdapterRunner, RunnerConfig

from scaler.config import Config, ConfigError, load_config
from scaler.utility.logs import setup_logging
from scaler.utility.net import parse_tcp

log = logging.getLogger(__name__)


def build_runners(config: Config, provider: str | None, scheduler: str | None) -> list[AdapterRunner]:
    address = scheduler or config.scheduler.address
    _, port = parse_tcp(address)
    runners = []
    for section in config.adapter:
        if provider is not None and section.provider != provider:
            continue
        name = section.name or section.provider
        groups = tuple(
            WorkerGroup(g.name, g.capabilities, g.workers_per_unit, g.min_units, g.max_units, g.priority, g.cost)
            for g in section.group
        )
        factory = load(section.provider)
        state_dir = Path(section.state_dir).expanduser()
        made = factory(address, f"{name}-{port}", state_dir, dict(section.options))
        keys = Path(config.scheduler.curve_keys) if config.scheduler.curve_keys else None
        runner_config = RunnerConfig(
            name,
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
        )
        runners.append(AdapterRunner(made, runner_config))
    return runners


def _stop_all(runners: list[AdapterRunner]) -> None:
    for runner in runners:
        runner.stop()


async def run_all(runners: list[AdapterRunner]) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
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
        runners = build_runners(config, provider, args.scheduler)
    except (ConfigError, ValueError, ImportError, KeyError) as exc:
        print(f"scaler_worker_adapter_{provider}: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    if not runners:
        print(
            f"scaler_worker_adapter_{provider}: {args.config} declares no [[adapter]] with provider = {provider!r}",
            file=sys.stderr,
        )
        raise SystemExit(2)
    asyncio.run(run_all(runners))
    code = max(runner.exit_code for runner in runners)
    if code:
        raise SystemExit(code)
