"""Local worker processes behind an injectable boot latency and injectable launch failures.

``launch`` answers after ``launch_seconds``; each unit's processes start ``boot_seconds`` later (the unit is
``booting`` meanwhile and listed as such). ``options.fail`` makes the next N launches of the
named groups raise the given error class (``capacity``, ``quota``, ``throttled``, ``auth``).
"""

from __future__ import annotations

import asyncio
import time

from scaler.adapters import errors
from scaler.adapters.fake.spec import ErrorKind, FakeOptions
from scaler.adapters.local.provider import LocalProvider
from scaler.adapters.provider import Unit, UnitState, WorkerGroup
from scaler.adapters.spec import ProviderContext

ERRORS: dict[ErrorKind, type[errors.ProviderError]] = {
    "capacity": errors.CapacityError,
    "quota": errors.QuotaError,
    "throttled": errors.ThrottledError,
    "auth": errors.AuthError,
}


class FakeProvider:
    errors = LocalProvider.errors  # its units are local processes

    def __init__(
        self,
        local: LocalProvider,
        boot_seconds: float = 0.0,
        fail: dict[str, tuple[ErrorKind, int]] | None = None,
        launch_seconds: float = 0.0,
    ) -> None:
        self.local = local
        self.boot_seconds = boot_seconds
        self.launch_seconds = launch_seconds
        self.fail = dict(fail or {})
        self.booting: dict[str, Unit] = {}
        self.requests: dict[str, list[Unit]] = {}
        self.tasks: set[asyncio.Task[None]] = set()
        self.launch_calls = 0

    async def launch(self, group: WorkerGroup, count: int, request_id: str) -> list[Unit]:
        self.launch_calls += 1
        await asyncio.sleep(self.launch_seconds)
        if request_id in self.requests:
            return self.requests[request_id]
        kind, left = self.fail.get(group.name, ("capacity", 0))
        if left > 0:
            self.fail[group.name] = (kind, left - 1)
            raise ERRORS[kind](f"injected {kind} failure for group {group.name}")
        units = []
        for _ in range(count):
            unit_id = self.local.identity.new_unit_id(group.name)
            unit = Unit(unit_id, group.name, UnitState.BOOTING, time.time(), request_id)
            self.booting[unit_id] = unit
            units.append(unit)
            task = asyncio.create_task(self._boot(group, unit))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        self.requests[request_id] = units
        return units

    async def _boot(self, group: WorkerGroup, unit: Unit) -> None:
        await asyncio.sleep(self.boot_seconds)
        if unit.unit_id in self.booting:
            await asyncio.to_thread(self.local.start_unit, group, unit.unit_id, unit.request_id)
            self.booting.pop(unit.unit_id, None)

    async def terminate(self, unit_ids: list[str]) -> None:
        for unit_id in unit_ids:
            self.booting.pop(unit_id, None)
        await self.local.terminate(unit_ids)

    async def list_units(self) -> list[Unit]:
        booting = list(self.booting.values())  # before the await: a unit may finish booting meanwhile
        running = await self.local.list_units()
        seen = {r.unit_id for r in running}
        return [*running, *[u for u in booting if u.unit_id not in seen]]


def make_provider(context: ProviderContext, options: FakeOptions) -> FakeProvider:
    local = LocalProvider(context, options.worker_args)
    return FakeProvider(local, options.boot_seconds, dict(options.fail), launch_seconds=options.launch_seconds)
