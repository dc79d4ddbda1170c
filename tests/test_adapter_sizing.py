"""The provider's optional ``groups(configured)`` hook, generic in the runner, and ``workers_per_unit = "auto"``."""

from __future__ import annotations

import asyncio
from pathlib import Path

import msgspec
import pytest
from scaler.adapters.errors import ThrottledError
from scaler.adapters.provider import Unit, WorkerGroup
from scaler.adapters.runner import AdapterRunner, RunnerConfig

from scaler.config import ConfigError, load_config


class Sizing:
    """An async provider with the hook; it answers ``throttled`` times with a throttling error first."""

    def __init__(self, throttled: int = 0, rename: bool = False) -> None:
        self.throttled = throttled
        self.rename = rename
        self.calls = 0

    async def groups(self, configured: tuple[WorkerGroup, ...]) -> tuple[WorkerGroup, ...]:
        self.calls += 1
        if self.calls <= self.throttled:
            raise ThrottledError("slow down")
        name = "renamed" if self.rename else configured[0].name
        return (msgspec.structs.replace(configured[0], name=name, capabilities="cpu=8,big"),)

    async def launch(self, group: WorkerGroup, count: int, request_id: str) -> list[Unit]:
        return []

    async def terminate(self, unit_ids: list[str]) -> None:
        return None

    async def list_units(self) -> list[Unit]:
        return []


CONFIG = RunnerConfig("a", "tcp://127.0.0.1:1", (WorkerGroup("g", ""),), backoff_base=0.01, max_cost_per_hour=3.0)


def test_the_runner_reports_the_groups_the_provider_sized_after_retrying_a_throttle() -> None:
    provider = Sizing(throttled=2)
    runner = AdapterRunner(provider, CONFIG)
    assert asyncio.run(runner.size_groups()) and provider.calls == 3
    state = runner._state()
    assert [(g.name, g.capabilities) for g in state.groups] == [("g", "cpu=8,big")]
    assert runner.groups["g"].capabilities == "cpu=8,big", "launches use the sized group"
    assert state.max_cost_per_hour == 3.0


def test_a_provider_that_renames_a_group_stops_the_adapter() -> None:
    runner = AdapterRunner(Sizing(rename=True), CONFIG)
    assert asyncio.run(runner.size_groups()) is False and runner.exit_code == 1


def test_without_the_hook_empty_capabilities_are_cpu_1() -> None:
    class Plain(Sizing):
        groups = None  # type: ignore[assignment]

    runner = AdapterRunner(Plain(), CONFIG)
    assert asyncio.run(runner.size_groups()) and runner._state().groups[0].capabilities == "cpu=1"


AUTO = """
[[adapter]]
provider = "{provider}"
[[adapter.group]]
name = "cpu"
workers_per_unit = "auto"
"""


@pytest.mark.parametrize("provider", ["local", "fake"])
def test_auto_is_refused_for_a_provider_that_does_not_know_its_units_shape(tmp_path: Path, provider: str) -> None:
    path = tmp_path / "auto.toml"
    path.write_text(AUTO.format(provider=provider))
    with pytest.raises(ConfigError, match=rf"auto.toml: \$\.adapter\[0\]\.group\[0\]\.workers_per_unit: .*{provider}"):
        load_config(path)
    path.write_text(AUTO.format(provider=provider).replace('"auto"', '"many"'))
    with pytest.raises(ConfigError, match=r"workers_per_unit"):
        load_config(path)


def test_auto_is_one_worker_for_a_sized_provider(tmp_path: Path) -> None:
    path = tmp_path / "auto.toml"
    text = (
        AUTO.format(provider="ec2")
        + '[adapter.options.groups.cpu]\ninstance_types = ["m5.large"]\nimage_id = "ami-1"\n'
    )
    path.write_text(text)
    (group,) = load_config(path).adapter[0].group
    assert group.workers_per_unit == "auto" and group.workers() == 1 and group.capabilities == ""
