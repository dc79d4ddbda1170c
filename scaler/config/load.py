"""Reading and checking a deployment file; every error names the file, the key path and the reason."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import NoReturn

import msgspec

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

from scaler.config.flags import timing_problem, where_and_why
from scaler.config.schema import Config
from scaler.utility.capabilities import CapabilityError, parse_capabilities
from scaler.utility.net import parse_tcp

_UNKNOWN_FIELD = re.compile(r"Object contains unknown field `([^`]*)`")


class ConfigError(ValueError):
    """A deployment file that cannot be used: the message says file, key and why."""


def options_problem(where: str, exc: msgspec.ValidationError) -> tuple[str, str]:
    """(key path, reason) of a provider's options table that does not decode into its Struct: msgspec
    names an unknown key in its message, not its path, so the key is moved into the path."""
    path, why = where_and_why(exc)
    key = f"{where}{path[1:]}"
    unknown = _UNKNOWN_FIELD.fullmatch(why)
    return (f"{key}.{unknown.group(1)}", "unknown field") if unknown else (key, why)


def load_config(path: str | Path) -> Config:
    source = Path(path)
    try:
        raw = tomllib.loads(source.read_text())
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read: {exc.strerror or exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from exc
    try:
        config = msgspec.convert(raw, Config)
    except msgspec.ValidationError as exc:
        path, why = where_and_why(exc)
        raise ConfigError(f"{source}: {path or '$'}: {why}") from exc
    _check(source, config)
    return config


def _check(source: Path, config: Config) -> None:
    from scaler.adapters.identity import IdentityError, check_name
    from scaler.adapters.registry import UnknownProviderError, spec

    def fail(key: str, why: str) -> NoReturn:
        raise ConfigError(f"{source}: {key}: {why}")

    def name_ok(key: str, what: str, value: str) -> None:
        try:
            check_name(what, value)
        except IdentityError as exc:
            fail(key, str(exc))

    if config.cluster_id:
        name_ok("$.cluster_id", "cluster_id", config.cluster_id)
    try:
        parse_tcp(config.scheduler.address)
    except ValueError as exc:
        fail("$.scheduler.address", str(exc))
    why = timing_problem(config.scheduler.heartbeat_interval, config.scheduler.peer_timeout)
    if why:
        fail("$.scheduler.peer_timeout", why)
    names: set[str] = set()
    for i, adapter in enumerate(config.adapter):
        where = f"$.adapter[{i}]"
        try:
            provider = spec(adapter.provider)
        except (UnknownProviderError, ImportError) as exc:
            fail(f"{where}.provider", str(exc))
        try:
            msgspec.convert(adapter.options, provider.options)
        except msgspec.ValidationError as exc:
            fail(*options_problem(f"{where}.options", exc))
        name = adapter.name or adapter.provider
        name_ok(f"{where}.name" if adapter.name else f"{where}.provider", "adapter name", name)
        if name in names:
            fail(f"{where}.name", f"adapter name {name!r} is used twice")
        names.add(name)
        if adapter.worker_scheduler_address:
            try:
                parse_tcp(adapter.worker_scheduler_address)
            except ValueError as exc:
                fail(f"{where}.worker_scheduler_address", str(exc))
        if not adapter.group:
            fail(f"{where}.group", "an adapter needs at least one [[adapter.group]]")
        groups: set[str] = set()
        for j, group in enumerate(adapter.group):
            at = f"{where}.group[{j}]"
            name_ok(f"{at}.name", "group name", group.name)
            if group.name in groups:
                fail(f"{at}.name", f"group name {group.name!r} is used twice in this adapter")
            groups.add(group.name)
            try:
                parse_capabilities(group.capabilities)
            except CapabilityError as exc:
                fail(f"{at}.capabilities", str(exc))
            if group.max_units < group.min_units:
                fail(f"{at}.max_units", f"need 0 <= min_units ({group.min_units}) <= max_units ({group.max_units})")
            if group.workers_per_unit == "auto" and not provider.sized_units:
                fail(
                    f"{at}.workers_per_unit",
                    f'"auto" needs a provider that knows its units\' shape (ec2); {adapter.provider!r} does not: '
                    "give a number of workers",
                )
        floor = sum(group.cost * group.min_units for group in adapter.group)
        if adapter.max_cost_per_hour is not None and floor > adapter.max_cost_per_hour:
            fail(
                f"{where}.max_cost_per_hour",
                f"{adapter.max_cost_per_hour:g} is less than what min_units cost ({floor:g} per hour)",
            )
        if adapter.backoff_max < adapter.backoff_base:
            fail(f"{where}.backoff_max", f"must be at least backoff_base ({adapter.backoff_base})")
